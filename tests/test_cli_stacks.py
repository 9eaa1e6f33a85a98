"""``kill -USR1 <pid>`` makes any latentspeed command print every thread's stack and go on: how a
hung run (a service, a test) says where it hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from latentspeed_core.testing import wait_for


def test_sigusr1_prints_the_stacks_and_the_command_goes_on(tmp_path):
    exe = Path(sys.executable).parent / "latentspeed"
    err = tmp_path / "stderr.txt"
    with err.open("wb") as f:
        proc = subprocess.Popen(
            [str(exe), "mock-exchange", "--port", "0"], stdout=f, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: "Listening on port" in err.read_text(), timeout=30, what="the mock exchange to listen"
        )
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "most recent call first" in err.read_text(), timeout=10, what="the stacks")
        assert proc.poll() is None  # still running
        assert "latentspeed_mock_exchange" in err.read_text()  # its own frames are named
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
