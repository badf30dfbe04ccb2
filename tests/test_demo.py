"""``provd demo``, the README's main command, run as a user would."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_provisions_restarts_and_serves(tmp_path):
    """The demo exits 0 and reports every phone provisioned, reconnected and served."""
    done = subprocess.run(
        [sys.executable, "-m", "provd", "demo", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all good" in done.stdout
    # one phone per vendor model family, and one that never registers at the PBX
    assert done.stdout.count("challenge ok") == 10
    assert "gigaset N670" in done.stdout
    assert "HTTP 404" in done.stdout  # the unknown MAC
    assert (tmp_path / "provd.db").exists()
    # the lifecycle table: nine registered (seen through PbxAdminApi GetRegs), one flagged
    lifecycle = done.stdout.split("\nlifecycle")[1]
    assert lifecycle.count("  registered  ") == 9, lifecycle
    assert lifecycle.count("FLAGGED") == 1 and "805ec0aa000a" in lifecycle
