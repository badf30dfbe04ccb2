"""The App's JavaScript login code under ``node --test`` (spec section 2 vectors)."""

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def test_login_js_against_spec_vectors():
    node = shutil.which("node")
    assert node is not None, "node (>= 20) is needed for the App's JS tests"
    done = subprocess.run(
        [node, "--test", str(HERE / "login.test.mjs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 8" in done.stdout
