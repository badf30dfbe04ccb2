"""nginx as the yardstick: one worker on 127.0.0.1 serving the same bytes as static files.

Runs from a temporary directory with its own configuration (nothing of the system's nginx
setup is read or touched), listens on loopback only, and is stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

INSTALL = "apt-get install nginx wrk"


def available() -> str | None:
    """None when nginx and wrk are both installed, else what is missing and how to fix it."""
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool)]
    if not missing:
        return None
    return f"{' and '.join(missing)} not installed: {INSTALL}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(root: Path, workdir: Path) -> Iterator[str]:
    """Serve ``root`` with one nginx worker on 127.0.0.1; yield the base URL."""
    port = _free_port()
    conf = workdir / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log off;\n"
        "  default_type application/octet-stream;\n"
        f"  client_body_temp_path {workdir}/nginx-body;\n"
        f"  proxy_temp_path {workdir}/nginx-proxy;\n"
        f"  fastcgi_temp_path {workdir}/nginx-fastcgi;\n"
        f"  uwsgi_temp_path {workdir}/nginx-uwsgi;\n"
        f"  scgi_temp_path {workdir}/nginx-scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }}\n"
        "}\n"
    )
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"nginx did not start: {err.strip()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
