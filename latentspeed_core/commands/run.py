"""``latentspeed run``: not built yet (placeholder owned by its issue)."""

from __future__ import annotations

import argparse

from ..components import Command


def _configure(p: argparse.ArgumentParser) -> None:
    pass


def _run(args: argparse.Namespace) -> int:
    print("latentspeed run: not implemented yet")
    return 1


COMMAND = Command("run", "run (not implemented yet)", _configure, _run)
