"""``latentspeed config validate FILE``: check a marketstream or engine config."""

from __future__ import annotations

import argparse

from ..components import Command
from ..config import load_yaml


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = sub.add_parser("validate", help="validate a marketstream or engine config file")
    v.add_argument("file")
    v.add_argument(
        "--kind",
        choices=["auto", "marketstream", "engine"],
        default="auto",
        help="which config this is (default: guessed from its keys)",
    )


def guess_kind(data: dict) -> str:
    """An engine config names strategies or a venue; a marketstream config does not."""
    if any(k in data for k in ("strategies", "venue", "risk", "market_data")):
        return "engine"
    return "marketstream"


def _run(args: argparse.Namespace) -> int:
    data = load_yaml(args.file)
    kind = guess_kind(data) if args.kind == "auto" else args.kind
    if kind == "engine":
        from ..engine.config import load_config
    else:
        from ..marketstream.config import load_config
    load_config(args.file, args.registry)
    print(f"{args.file}: valid {kind} config")
    return 0


COMMAND = Command("config", "configuration tools (validate)", _configure, _run)
