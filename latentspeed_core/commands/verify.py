"""``latentspeed verify``: pre-flight checks of the host (isolated cores, IRQs, huge pages...).

Reads /proc and /sys only and changes nothing. Exit 0 unless a check FAILs.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..components import Command
from ..config import ConfigError
from ..datacollect.checks import DEFAULT_PORTS, FAIL, run_checks, summarise
from ..datacollect.procfs import parse_cpu_list

STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    p.add_argument(
        "--cores",
        default=None,
        help="cores the engine will be pinned to, expected isolated (default: the last one or two"
        " CPUs of this machine, as scripts/setup_kernel.sh recommends)",
    )
    p.add_argument(
        "--ports",
        default=",".join(map(str, DEFAULT_PORTS)),
        help="TCP ports that must be free: mock exchange, ZMQ trades/books (default: %(default)s)",
    )


def _ports(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(None, "--ports", f"expected comma-separated port numbers, got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    cores = parse_cpu_list(args.cores) if args.cores is not None else None
    loaded = [p.name for p in args.registry.plugins] if getattr(args, "registry", None) else None
    checks = run_checks(cores=cores, ports=_ports(args.ports), loaded_plugins=loaded)
    report = summarise(checks)
    if args.json:
        print(json.dumps(report, indent=2))
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="latentspeed verify: host pre-flight")
        for col in ("check", "status", "observed", "what to do"):
            table.add_column(col, overflow="fold")
        for c in checks:
            table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", escape(c.observed), escape(c.advice))
        console = Console()
        console.print(table)
        n = report["counts"]
        console.print(f"{n['PASS']} pass, {n['WARN']} warn, {n['FAIL']} fail")
    else:
        for c in checks:
            line = f"{c.status:4}  {c.name:20}  {c.observed}"
            print(line + (f"  -> {c.advice}" if c.advice else ""))
        n = report["counts"]
        print(f"{n['PASS']} pass, {n['WARN']} warn, {n['FAIL']} fail")
    return 1 if any(c.status == FAIL for c in checks) else 0


COMMAND = Command(
    "verify",
    "pre-flight checks of the host: isolated cores, nohz_full, huge pages, IRQs, governor, SMT, ports",
    _configure,
    _run,
)
