"""``latentspeed plugins``: what is installed and what each plugin registers."""

from __future__ import annotations

import argparse
import json
import sys

from ..components import Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per plugin")


def _run(args: argparse.Namespace) -> int:
    plugins = [info.as_dict() for info in args.registry.plugins]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    if not sys.stdout.isatty():
        for p in plugins:
            comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in p["components"].items())
            print(f"{p['name']}\t{p['distribution']}\t{p['version']}\t{','.join(p['hooks'])}\t{comps}")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="latentspeed plugins")
    for col in ("name", "distribution", "version", "hooks", "components"):
        table.add_column(col)
    for p in plugins:
        comps = "\n".join(f"{k}: {', '.join(v)}" for k, v in p["components"].items())
        cells = (p["name"], p["distribution"], p["version"], "\n".join(p["hooks"]), comps)
        table.add_row(*(escape(str(c)) for c in cells))  # third-party names are not markup
    Console().print(table)
    return 0


COMMAND = Command("plugins", "list installed plugins and the components they register", _configure, _run)
