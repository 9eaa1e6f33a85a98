"""Shared fixtures for the core's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def latentspeed(*args: str, env: dict | None = None, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed ``latentspeed`` command and capture its output."""
    return subprocess.run(
        [str(BIN / "latentspeed"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
def run_cli():
    return latentspeed
