"""``latentspeed analyze RUN_DIR``: latency percentiles per stage, throughput, trading and CPU
of a run made by ``latentspeed collect`` (or copied from another machine)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..components import Command
from ..datacollect.analysis import REPORT_FILE, AnalysisError, analyze_run, resolve_run_dir

log = logging.getLogger(__name__)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a folder holding run directories)")
    p.add_argument(
        "--json-out", metavar="FILE", help=f"where to write the report (default: RUN_DIR/{REPORT_FILE})"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def print_report(report: dict, run_dir: Path, written: Path) -> None:
    """The summary a person reads: one table per section.

    Every text from the report is escaped: rich would take ``[analysis]`` in a hint for markup.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    lat = Table(title=f"latency (µs): {escape(str(report['run']))}")
    for col in ("stage", "count", "min", "p50", "p95", "p99", "p99.9", "max", "mean"):
        lat.add_column(col, justify="left" if col == "stage" else "right")
    for stats in report["latency_us"].values():
        lat.add_row(
            escape(str(stats["label"])),
            *(_fmt(stats[k]) for k in ("count", "min", "p50", "p95", "p99", "p99.9", "max", "mean")),
        )
    console.print(lat)

    t, tp = report["trading"], report["throughput"]
    trade = Table(title="trading and throughput", show_header=False)
    trade.add_column("what")
    trade.add_column("value", justify="right")
    positions = escape(", ".join(f"{s}: {q:g}" for s, q in t["positions"].items()) or "flat")
    for label, value in (
        ("duration (s)", _fmt(tp["duration_s"])),
        ("market-data messages", _fmt(t["md_messages"])),
        ("market-data msg/s", _fmt(tp["md_messages_per_s"])),
        ("orders sent", _fmt(t["orders"])),
        ("orders/s", _fmt(tp["orders_per_s"], 2)),
        ("fills", _fmt(t["fills"])),
        ("rejects", _fmt(t["rejects"])),
        ("fill ratio", _fmt(t["fill_ratio"], 3)),
        ("final position", positions),
        ("PnL", _fmt(t["pnl"], 4)),
        ("numbers from", escape(str(t["source"]))),
    ):
        trade.add_row(label, value)
    console.print(trade)

    cpu = report["cpu"]
    if cpu["per_core"] or cpu["per_process"]:
        table = Table(title="CPU")
        for col in ("core / process", "mean %", "max %", "note"):
            table.add_column(col, justify="left" if col in ("core / process", "note") else "right")
        pinned = {str(c) for c in cpu["pinned_cores"]}
        for core, s in cpu["per_core"].items():
            name = "all cores" if core == "all" else escape(f"cpu{core}")
            table.add_row(
                name, _fmt(s["mean_busy_pct"]), _fmt(s["max_busy_pct"]), "pinned" if core in pinned else ""
            )
        for name, s in cpu["per_process"].items():
            note = f"rss {s['max_rss_kb'] / 1024:.0f} MiB, cores {','.join(map(str, s['cores_seen']))}"
            table.add_row(escape(name), _fmt(s["mean_cpu_pct"]), _fmt(s["max_cpu_pct"]), escape(note))
        console.print(table)
    for p in report["plots"]:
        console.print(f"plot: {escape(str(run_dir / p))}")
    if report.get("plots_error"):
        console.print(f"[yellow]no plots: {escape(str(report['plots_error']))}[/]")
    console.print(f"report: {escape(str(written))}")


def _run(args: argparse.Namespace) -> int:
    try:
        run_dir = resolve_run_dir(Path(args.run_dir))
        if run_dir != Path(args.run_dir):
            log.info("analysing the newest run inside %s: %s", args.run_dir, run_dir.name)
        report = analyze_run(run_dir, json_out=args.json_out, plots=not args.no_plots)
    except AnalysisError as exc:
        print(f"latentspeed analyze: error: {exc}", file=sys.stderr)
        return 2
    written = Path(args.json_out) if args.json_out else run_dir / REPORT_FILE
    print_report(report, run_dir, written)
    return 0


COMMAND = Command(
    "analyze",
    "analyse a collected run: latency percentiles per stage, throughput, fills, PnL, CPU; report.json + plots",
    _configure,
    _run,
)
