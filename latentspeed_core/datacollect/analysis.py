"""Turn a run directory into a report: latency per stage, throughput, trading, CPU.

Inputs (all found relative to the run directory, so a copied directory works):
- the engine's latency JSON lines (``order``, ``stats`` and ``summary`` records; see
  .notes/contracts.md and docs/data-collection.md),
- the engine's log (``STATS ...`` lines) as a fallback when no summary record was written,
- the monitors' CSVs (:mod:`.monitors`), and ``manifest.json`` when ``latentspeed collect`` made it.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import orjson

log = logging.getLogger(__name__)

#: (key, label, start field, end field) of each latency stage of an order record.
STAGES = (
    ("md_to_decision", "market data → decision", "md_receipt_ns", "decision_ns"),
    ("decision_to_sent", "decision → order sent", "decision_ns", "sent_ns"),
    ("order_to_ack", "order → ack", "sent_ns", "ack_ns"),
    ("order_to_fill", "order → first fill", "sent_ns", "first_fill_ns"),
    ("tick_to_trade", "tick-to-trade", "md_receipt_ns", "sent_ns"),
)
#: Order triggers that are market data (records without a ``trigger`` are older: taken as such).
MD_TRIGGERS = ("book", "trade")
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9))
STAT_KEYS = ("count", "min", "max", "mean", "p50", "p95", "p99", "p99.9")
DEFAULT_LATENCY_FILE = "latency.jsonl"
DEFAULT_ENGINE_LOG = "logs/engine.log"
REPORT_FILE = "report.json"

STATS_LINE = re.compile(r"STATS ((?:\w+=\S*\s*)+)")


class AnalysisError(Exception):
    """The run directory holds nothing to analyse (exit code 2 from the command)."""


def resolve_run_dir(path: Path) -> Path:
    """``path`` itself, or the newest run directory inside it (``scp -r`` of a run into a folder)."""
    path = Path(path)
    if not path.is_dir():
        raise AnalysisError(f"{path}: not a directory")
    if (path / "manifest.json").exists() or (path / DEFAULT_LATENCY_FILE).exists():
        return path
    runs = sorted(p for p in path.iterdir() if p.is_dir() and (p / "manifest.json").exists())
    if runs:
        return runs[-1]
    return path


def load_manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def load_latency(path: Path) -> tuple[list[dict], list[dict], dict | None, int]:
    """Order records, stats records, the summary (last one wins) and the number of bad lines skipped."""
    orders: list[dict] = []
    stats: list[dict] = []
    summary: dict | None = None
    skipped = 0
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                log.warning("%s:%d: not JSON, skipped", path.name, n)
                continue
            kind = rec.get("type") if isinstance(rec, dict) else None
            if kind == "order":
                orders.append(rec)
            elif kind == "stats":
                stats.append(rec)
            elif kind == "summary":
                summary = rec
            else:
                skipped += 1
    return orders, stats, summary, skipped


def stage_values(orders: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per stage, the latencies in µs of every order that has both timestamps.

    A negative interval means mixed clocks or a bug upstream: it is counted and left out. Stages
    from ``md_receipt_ns`` count only orders decided on market data (``trigger`` book or trade):
    a fill or a timer has no tick to count from.
    """
    values: dict[str, list[int]] = {key: [] for key, *_ in STAGES}
    negative: Counter[str] = Counter()
    for rec in orders:
        on_md = rec.get("trigger", "book") in MD_TRIGGERS
        for key, _, start, end in STAGES:
            if start == "md_receipt_ns" and not on_md:
                continue
            a, b = rec.get(start), rec.get(end)
            if isinstance(a, int) and isinstance(b, int):
                d = b - a
                if d < 0:
                    negative[key] += 1
                else:
                    values[key].append(d)
    out = {k: np.asarray(v, dtype=np.float64) / 1000.0 for k, v in values.items()}
    return out, dict(negative)


def describe(us: np.ndarray) -> dict:
    """count, min, max, mean and the percentiles, in µs (``None`` when there is no sample)."""
    if us.size == 0:
        return {k: (0 if k == "count" else None) for k in STAT_KEYS}
    out = {
        "count": int(us.size),
        "min": round(float(us.min()), 3),
        "max": round(float(us.max()), 3),
        "mean": round(float(us.mean()), 3),
    }
    for name, q in PERCENTILES:
        out[name] = round(float(np.percentile(us, q)), 3)
    return out


def parse_stats_lines(text: str) -> list[dict]:
    """The engine's ``STATS key=value ...`` log lines, numbers converted; ``position`` kept as a dict."""
    out: list[dict] = []
    for m in STATS_LINE.finditer(text):
        rec: dict = {}
        for pair in m.group(1).split():
            key, _, value = pair.partition("=")
            if key == "position":
                pos = {}
                for item in filter(None, value.split(",")):
                    sym, _, qty = item.rpartition(":")
                    try:
                        pos[sym] = float(qty)
                    except ValueError:
                        continue
                rec["positions"] = pos
                continue
            try:
                rec[key] = int(value)
            except ValueError:
                try:
                    rec[key] = float(value)
                except ValueError:
                    rec[key] = value
        out.append(rec)
    return out


def read_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _num(v, default: float = 0.0) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def cpu_summary(monitors: Path, pinned: list[int]) -> dict:
    per_core: dict[str, list[float]] = defaultdict(list)
    for row in read_csv(monitors / "cpu.csv"):
        per_core[row.get("cpu", "?")].append(_num(row.get("busy_pct")))
    cores = {
        cpu: {
            "samples": len(v),
            "mean_busy_pct": round(float(np.mean(v)), 2),
            "max_busy_pct": round(max(v), 2),
        }
        for cpu, v in sorted(per_core.items(), key=lambda kv: (kv[0] != "all", kv[0].zfill(4)))
        if v
    }
    procs: dict[str, dict] = {}
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in read_csv(monitors / "processes.csv"):
        grouped[row.get("name", "?")].append(row)
    for name, rows in grouped.items():
        cpu = [_num(r.get("cpu_pct")) for r in rows]
        rss = [_num(r.get("rss_kb")) for r in rows]
        procs[name] = {
            "samples": len(rows),
            "pids": sorted({int(_num(r.get("pid"))) for r in rows}),
            "mean_cpu_pct": round(float(np.mean(cpu)), 2),
            "max_cpu_pct": round(max(cpu), 2),
            "max_rss_kb": int(max(rss)),
            "cores_seen": sorted({int(_num(r.get("last_cpu"), -1)) for r in rows}),
        }
    ctxt = [_num(r.get("ctxt_per_s")) for r in read_csv(monitors / "context_switches.csv")]
    mem = [_num(r.get("mem_used_kb")) for r in read_csv(monitors / "memory.csv")]
    return {
        "pinned_cores": pinned,
        "per_core": cores,
        "per_process": procs,
        "context_switches_per_s": (
            {"mean": round(float(np.mean(ctxt)), 1), "max": round(max(ctxt), 1)} if ctxt else None
        ),
        "memory_used_kb": {"max": int(max(mem)), "min": int(min(mem))} if mem else None,
    }


def _duration_s(summary: dict | None, stats: list[dict], orders: list[dict], manifest: dict) -> float | None:
    if summary and _num(summary.get("duration_s")) > 0:
        return float(summary["duration_s"])
    if len(stats) >= 2:
        span = (_num(stats[-1].get("ts_ns")) - _num(stats[0].get("ts_ns"))) / 1e9
        if span > 0:
            return span
    ends = [o.get("final_ns") or o.get("sent_ns") for o in orders]
    starts = [o.get("md_receipt_ns") for o in orders]
    ends = [e for e in ends if isinstance(e, int)]
    starts = [s for s in starts if isinstance(s, int)]
    if ends and starts and max(ends) > min(starts):
        return (max(ends) - min(starts)) / 1e9
    actual = (
        manifest.get("duration_s", {}).get("actual") if isinstance(manifest.get("duration_s"), dict) else None
    )
    return float(actual) if actual else None


def trading_summary(
    orders: list[dict], stats: list[dict], summary: dict | None, log_stats: list[dict]
) -> dict:
    """Counts and PnL: the engine's summary record, else its last stats record or STATS line,
    else what the order records alone say."""
    source = "summary record"
    final = summary
    if final is None and stats:
        final, source = stats[-1], "last stats record"
    if final is None and log_stats:
        final, source = log_stats[-1], "last STATS log line"
    statuses = Counter(str(o.get("status")) for o in orders)
    filled_orders = sum(
        1 for o in orders if o.get("first_fill_ns") is not None or _num(o.get("filled_qty")) > 0
    )
    if final is None:
        source = "order records"
        final = {
            "orders": len(orders),
            "fills": filled_orders,
            "rejects": statuses.get("rejected", 0),
        }
    orders_n = int(_num(final.get("orders")))
    fills_n = int(_num(final.get("fills")))
    if orders:
        fill_ratio = filled_orders / len(orders)
    else:
        fill_ratio = min(1.0, fills_n / orders_n) if orders_n else None
    realized = final.get("realized_pnl")
    unrealized = final.get("unrealized_pnl")
    pnl = final.get("pnl")
    if pnl is None and realized is not None:
        pnl = _num(realized) + _num(unrealized)
    return {
        "source": source,
        "md_messages": int(_num(final.get("rx_packets"))),
        "orders": orders_n,
        "fills": fills_n,
        "rejects": int(_num(final.get("rejects"))),
        "order_records": len(orders),
        "filled_orders": filled_orders,
        "fill_ratio": round(fill_ratio, 4) if fill_ratio is not None else None,
        "order_status": dict(sorted(statuses.items())),
        "positions": final.get("positions") or {},
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "pnl": pnl,
    }


def find_latency_file(run_dir: Path, manifest: dict) -> Path | None:
    named = manifest.get("latency_file")
    candidates = [run_dir / named] if isinstance(named, str) else []
    candidates.append(run_dir / DEFAULT_LATENCY_FILE)
    for c in candidates:
        if c.is_file():
            return c
    found = sorted(run_dir.glob("**/*latency*.jsonl"))
    return found[0] if found else None


def analyze_run(run_dir: Path, json_out: Path | None = None, plots: bool = True) -> dict:
    """Build the report for ``run_dir``, write it (default ``run_dir/report.json``) and the plots."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    latency_path = find_latency_file(run_dir, manifest)
    engine_log = run_dir / (manifest.get("processes", {}).get("engine", {}).get("log") or DEFAULT_ENGINE_LOG)
    log_text = engine_log.read_text(errors="replace") if engine_log.is_file() else ""
    log_stats = parse_stats_lines(log_text)
    if latency_path is None and not log_stats:
        raise AnalysisError(
            f"{run_dir}: no latency records ({DEFAULT_LATENCY_FILE}) and no engine STATS lines "
            f"({DEFAULT_ENGINE_LOG}): is this a run directory?"
        )
    orders, stats, summary, skipped = load_latency(latency_path) if latency_path else ([], [], None, 0)
    if not orders and not stats and summary is None and not log_stats:
        # a latency file of nothing usable: an empty report would read as a run that did nothing
        raise AnalysisError(
            f"{run_dir}: no usable records in {latency_path.relative_to(run_dir).as_posix()} "
            f"({skipped} lines skipped) and no engine STATS lines ({DEFAULT_ENGINE_LOG})"
        )
    values, negative = stage_values(orders)
    latency = {key: {"label": label, **describe(values[key])} for key, label, *_ in STAGES}
    trading = trading_summary(orders, stats, summary, log_stats)
    duration = _duration_s(summary, stats, orders, manifest)
    pinned = manifest.get("cores", {}).get("pinned") or []
    report = {
        "report_version": 1,
        "run": run_dir.resolve().name,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": {
            "latency_file": latency_path.relative_to(run_dir).as_posix() if latency_path else None,
            "engine_log": engine_log.relative_to(run_dir).as_posix() if log_text else None,
            "records": {"order": len(orders), "stats": len(stats), "summary": int(summary is not None)},
            "skipped_lines": skipped,
            "negative_intervals": negative,
        },
        "latency_us": latency,
        "throughput": {
            "duration_s": round(duration, 3) if duration else None,
            "md_messages": trading["md_messages"],
            "md_messages_per_s": round(trading["md_messages"] / duration, 2) if duration else None,
            "orders_per_s": round(trading["orders"] / duration, 2) if duration else None,
        },
        "trading": trading,
        "cpu": cpu_summary(run_dir / "monitors", pinned),
        "plots": [],
    }
    if plots:
        try:
            from .plots import plot_cpu, plot_latency

            out = run_dir / "plots"
            made = [
                plot_latency(values, out / "latency.png"),
                plot_cpu(run_dir / "monitors", out / "cpu.png", pinned),
            ]
            report["plots"] = [p.relative_to(run_dir).as_posix() for p in made if p is not None]
        except ImportError as exc:
            from ..known_plugins import extra_hint

            report["plots_error"] = (
                f"matplotlib is not installed ({exc}); install it: {extra_hint('analysis')}"
            )
            log.warning("no plots: %s", report["plots_error"])
    target = Path(json_out) if json_out else run_dir / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    return report
