"""``latentspeed backtest --config engine.yml [--capture FILE] [--json-out FILE] [--from TS --to TS]``.

The config's feeds replay their captures (``replay:``, or ``--capture`` for every feed) through
the live feed code, the strategies run on the simulated clock and the ``paper`` venue fills
(docs/simulation.md). Prints a summary; ``--json-out`` writes the report and a PNG of equity
and position next to it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..components import Command
from ..config import ConfigError

log = logging.getLogger("latentspeed.backtest")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE", help="engine config (the same one you run live)")
    p.add_argument("--capture", metavar="FILE", help="capture every feed replays (default: each feed's replay:)")
    p.add_argument("--json-out", metavar="FILE", help="write the report here, and its equity plot as FILE's .png")
    p.add_argument("--plot", metavar="PNG", help="equity and position plot (default: next to --json-out)")
    p.add_argument("--from", dest="t_from", metavar="TS", help="skip inputs before TS (ns since epoch or ISO 8601)")
    p.add_argument("--to", dest="t_to", metavar="TS", help="stop at TS (ns since epoch or ISO 8601)")


def _run(args: argparse.Namespace) -> int:
    from ..backtest import backtest_setup, parse_time, plot_curve, run_backtest, write_report
    from ..config import load_yaml
    from ..logs import setup_logging

    try:
        t_from = parse_time(args.t_from) if args.t_from else None
        t_to = parse_time(args.t_to) if args.t_to else None
    except ValueError as exc:
        raise ConfigError(None, "--from/--to", str(exc)) from None
    if t_from is not None and t_to is not None and t_to < t_from:
        raise ConfigError(None, "--to", "is before --from")
    from .marketstream import output_problem

    for opt, path in (("--json-out", args.json_out), ("--plot", args.plot)):
        if path and (problem := output_problem(path)):
            raise ConfigError(None, opt, f"{path}: {problem}")
    data = load_yaml(args.config)
    setup_logging(args.log_level or "warning")
    from .run import _registry_for

    registry = _registry_for(args, data)
    setup = backtest_setup(data, registry, args.config, args.capture)
    tty = sys.stderr.isatty()
    if tty:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("backtest", total=None)

            def progress(events: int, t_ns: int) -> None:
                bar.update(task, description=f"backtest: {events:,} inputs, at {_iso(t_ns)}")

            result = run_backtest(setup, registry, t_from=t_from, t_to=t_to, progress=progress)
    else:
        result = run_backtest(setup, registry, t_from=t_from, t_to=t_to)
    if result.events == 0:
        span = " between --from and --to" if (t_from or t_to) else ""
        print(f"latentspeed backtest: error: no market data in {', '.join(result.settings['captures'])}{span}",
              file=sys.stderr)  # fmt: skip
        return 1
    if result.books == 0 and result.trades == 0:
        # every input refused: a capture of another venue, or of nothing the feeds understand
        errors = ", ".join(f"{name}: {st.get('errors', 0)} bad inputs" for name, st in result.summary["market_data"].items())
        hint = " (or no snapshot after --from: a book starts from one)" if t_from else ""
        print(f"latentspeed backtest: error: no book or trade from the {result.events:,} inputs of "
              f"{', '.join(result.settings['captures'])} ({errors}): is it a capture of these feeds?{hint}",
              file=sys.stderr)  # fmt: skip
        return 1
    outputs = []
    failed = []  # a file that cannot be written must not cost the run's summary, nor the other file
    plot = args.plot or (str(Path(args.json_out).with_suffix(".png")) if args.json_out else None)
    for what, path, write in (("report", args.json_out, write_report), ("plot", plot, plot_curve)):
        if not path:
            continue
        try:
            written = write(result, path)
        except OSError as exc:
            failed.append(f"cannot write the {what} to {path}: {exc.strerror or exc}")
        else:
            if written is not None:
                outputs.append((what, written))
    _print_summary(result, outputs)
    for line in failed:
        print(f"latentspeed backtest: error: {line}", file=sys.stderr)
    return 1 if failed else 0


def _iso(t_ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if t_ns else "-"


def _print_summary(result, outputs) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rep = result.report()
    t = Table(title="latentspeed backtest", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    makers = sum(1 for f in result.fills if f["liquidity"] == "maker")
    rows = [
        ("simulated span", f"{_iso(rep['from_ns'])} .. {_iso(rep['to_ns'])}"),
        ("inputs (books / trades)", f"{rep['events']:,} ({rep['books']:,} / {rep['trades']:,})"),
        ("speed", f"{rep['events_per_s']:,.0f} inputs/s ({rep['wall_s']} s)"),
        ("orders", f"{rep['orders']:,}"),
        ("fills (maker / taker)", f"{len(result.fills):,} ({makers:,} / {len(result.fills) - makers:,})"),
        ("rejects (risk / venue)", f"{rep['rejects']['risk']:,} / {rep['rejects']['venue']:,}"),
        ("position", ", ".join(f"{s} {q:.10g}" for s, q in rep["position"].items()) or "-"),
        ("PnL (realized / unrealized)", f"{rep['pnl']:.4f} ({rep['realized_pnl']:.4f} / {rep['unrealized_pnl']:.4f})"),
        ("fees", f"{rep['fees']:.4f}"),
        ("fill digest", rep["fill_digest"]),
    ]
    for name, path in outputs:
        rows.append((name, str(path)))
    for k, v in rows:
        t.add_row(k, escape(str(v)))
    Console(width=max(100, Console().width)).print(t)


COMMAND = Command(
    "backtest",
    "replay a capture through the strategies on simulated time, filled by the paper venue",
    _configure,
    _run,
)
