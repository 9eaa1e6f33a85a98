"""`latentspeed analyze` on a run directory built here in the contract formats (no engine needed)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import orjson
import pytest

from latentspeed_core.cli import main
from latentspeed_core.datacollect.analysis import analyze_run, parse_stats_lines
from latentspeed_core.datacollect.monitors import FILES

T0 = 1_700_000_000_000_000_000
STAGE_KEYS = ("md_to_decision", "decision_to_sent", "order_to_ack", "order_to_fill", "tick_to_trade")


def make_run(run_dir, n_orders=1000, with_summary=True):
    """Orders i = 1..n: md→decision i µs, decision→sent 2 µs, sent→ack 50 µs, every 2nd filled after 80 µs."""
    run_dir.mkdir(parents=True)
    lines = []
    for i in range(1, n_orders + 1):
        md = T0 + i * 10_000_000
        decision = md + i * 1000
        sent = decision + 2000
        filled = i % 2 == 0
        lines.append(
            {
                "type": "order",
                "cl_ord_id": i,
                "symbol": "BTC-USD",
                "side": "buy" if i % 2 else "sell",
                "md_receipt_ns": md,
                "decision_ns": decision,
                "sent_ns": sent,
                "ack_ns": sent + 50_000,
                "first_fill_ns": sent + 80_000 if filled else None,
                "final_ns": sent + 90_000,
                "status": "filled" if filled else "canceled",
                "filled_qty": 0.01 if filled else 0.0,
            }
        )
    lines.append(
        {
            "type": "stats",
            "ts_ns": T0,
            "rx_packets": 10,
            "orders": 1,
            "fills": 0,
            "rejects": 0,
            "positions": {"BTC-USD": 0.0},
            "realized_pnl": 0.0,
            "unrealized_pnl": 0.0,
        }
    )
    if with_summary:
        lines.append(
            {
                "type": "summary",
                "ts_ns": T0 + 10**10,
                "rx_packets": 5000,
                "orders": n_orders,
                "fills": n_orders // 2,
                "rejects": 3,
                "positions": {"BTC-USD": 0.25},
                "realized_pnl": 1.5,
                "unrealized_pnl": -0.5,
                "pnl": 1.0,
                "duration_s": 10.0,
            }
        )
    body = b"\n".join(orjson.dumps(rec) for rec in lines) + b"\nnot json at all\n"
    (run_dir / "latency.jsonl").write_bytes(body)
    (run_dir / "logs").mkdir()
    (run_dir / "logs/engine.log").write_text(
        "2026-01-01 INFO latentspeed.engine: Connected to exchange\n"
        "2026-01-01 INFO latentspeed.engine: STATS rx_packets=4000 orders=900 fills=400 rejects=2 "
        "position=BTC-USD:0.5,ETH-USD:0 pnl=12.34 t2t_p50_us=10.5 t2t_p99_us=40.0\n"
    )
    mon = run_dir / "monitors"
    mon.mkdir()
    writers = {}
    handles = []
    for name, fields in FILES.items():
        f = (mon / name).open("w", newline="")
        handles.append(f)
        writers[name] = csv.writer(f)
        writers[name].writerow(fields)
    for s in range(10):
        ts = 1_700_000_000 + s
        for cpu, busy in (("all", 30.0), ("0", 10.0 + s), ("1", 50.0)):
            writers["cpu.csv"].writerow([ts, s, cpu, busy, busy, 0, 0, 0, 0, 0, 100 - busy])
        writers["memory.csv"].writerow([ts, s, 1000, 600, 400 + s, 40.0, 0, 0, 0])
        writers["context_switches.csv"].writerow([ts, s, 1000 + s, 500, 2, 0])
        writers["processes.csv"].writerow([ts, s, "engine", 42, 20.0 * (s % 2), 50_000 + s, 3, 1, s, 0])
        writers["processes.csv"].writerow([ts, s, "mock_exchange", 43, 5.0, 30_000, 2, 0, s, 0])
    for f in handles:
        f.close()
    (run_dir / "manifest.json").write_text(
        json.dumps({"cores": {"pinned": [1]}, "latency_file": "latency.jsonl"})
    )
    return run_dir


def test_stage_percentiles_match_numpy_on_known_intervals(tmp_path):
    run = make_run(tmp_path / "run")
    report = analyze_run(run, plots=False)
    lat = report["latency_us"]
    assert set(lat) == set(STAGE_KEYS)
    md_to_decision = np.arange(1, 1001, dtype=float)  # i µs
    assert lat["md_to_decision"]["count"] == 1000
    assert lat["md_to_decision"]["min"] == 1.0 and lat["md_to_decision"]["max"] == 1000.0
    assert lat["md_to_decision"]["mean"] == pytest.approx(500.5)
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99), ("p99.9", 99.9)):
        assert lat["md_to_decision"][key] == pytest.approx(np.percentile(md_to_decision, q), abs=1e-3)
    assert lat["decision_to_sent"]["p50"] == 2.0 and lat["decision_to_sent"]["max"] == 2.0
    assert lat["order_to_ack"]["p99.9"] == 50.0
    assert lat["order_to_fill"]["count"] == 500 and lat["order_to_fill"]["p50"] == 80.0
    assert lat["tick_to_trade"]["min"] == 3.0 and lat["tick_to_trade"]["max"] == 1002.0


def test_trading_throughput_and_cpu_come_from_the_summary_and_monitors(tmp_path):
    report = analyze_run(make_run(tmp_path / "run"), plots=False)
    t = report["trading"]
    assert t["source"] == "summary record"
    assert (t["orders"], t["fills"], t["rejects"], t["md_messages"]) == (1000, 500, 3, 5000)
    assert t["fill_ratio"] == 0.5
    assert t["positions"] == {"BTC-USD": 0.25} and t["pnl"] == 1.0
    assert t["order_status"] == {"canceled": 500, "filled": 500}
    assert report["throughput"] == {
        "duration_s": 10.0,
        "md_messages": 5000,
        "md_messages_per_s": 500.0,
        "orders_per_s": 100.0,
    }
    assert report["sources"]["skipped_lines"] == 1
    cpu = report["cpu"]
    assert cpu["pinned_cores"] == [1]
    assert cpu["per_core"]["1"]["mean_busy_pct"] == 50.0
    assert cpu["per_core"]["0"]["max_busy_pct"] == 19.0
    assert cpu["per_process"]["engine"]["max_cpu_pct"] == 20.0
    assert cpu["per_process"]["engine"]["max_rss_kb"] == 50_009
    assert cpu["context_switches_per_s"]["max"] == 1009.0


def test_without_summary_the_engine_stats_line_is_used(tmp_path):
    report = analyze_run(make_run(tmp_path / "run", with_summary=False), plots=False)
    # The stats record is preferred to the log line; drop it to reach the log.
    assert report["trading"]["source"] == "last stats record"
    lines = (tmp_path / "run/latency.jsonl").read_text().splitlines()
    (tmp_path / "run/latency.jsonl").write_text("\n".join(x for x in lines if '"stats"' not in x))
    t = analyze_run(tmp_path / "run", plots=False)["trading"]
    assert t["source"] == "last STATS log line"
    assert (t["orders"], t["fills"], t["rejects"], t["md_messages"]) == (900, 400, 2, 4000)
    assert t["positions"] == {"BTC-USD": 0.5, "ETH-USD": 0.0} and t["pnl"] == 12.34


def test_stats_line_parser():
    [rec] = parse_stats_lines(
        "x STATS rx_packets=7 orders=3 fills=1 rejects=0 position= pnl=-1.5 t2t_p50_us=nan t2t_p99_us=2"
    )
    assert rec["rx_packets"] == 7 and rec["orders"] == 3 and rec["positions"] == {} and rec["pnl"] == -1.5


def test_cli_on_a_copied_run_writes_report_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    original = make_run(tmp_path / "machine_a" / "20260101_000000")
    copied = tmp_path / "collected_data"
    copied.mkdir()
    shutil.copytree(original, copied / original.name)  # as `scp -r run collected_data/` leaves it
    shutil.rmtree(tmp_path / "machine_a")
    out = tmp_path / "elsewhere" / "r.json"
    assert main(["analyze", str(copied), "--json-out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["run"] == "20260101_000000"
    assert report["plots"] == ["plots/latency.png", "plots/cpu.png"]
    for p in report["plots"]:
        assert (copied / original.name / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "tick-to-trade" in text and "fill ratio" in text


def test_a_directory_without_records_is_a_clear_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "no latency records" in capsys.readouterr().err


def test_a_latency_file_of_nothing_usable_is_a_clear_error_not_an_empty_report(tmp_path, capsys):
    (tmp_path / "latency.jsonl").write_text('{"a": 1}\nnot json\n[1, 2]\n')
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no usable records in latency.jsonl (3 lines skipped)" in err
    assert not (tmp_path / "report.json").exists()


def test_the_script_wrapper_analyzes(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    run = make_run(tmp_path / "run")
    script = Path(__file__).resolve().parent.parent / "scripts" / "analyze_results.py"
    out = subprocess.run(
        [sys.executable, str(script), str(run), "--no-plots"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "report.json").read_text())["trading"]["orders"] == 1000


def test_printed_text_is_not_eaten_as_markup_and_the_hint_works_for_pip(tmp_path, capsys, monkeypatch):
    """rich took ``[analysis]`` in the hint for markup and printed ``pip install -e '.'``."""
    import sys

    monkeypatch.setitem(sys.modules, "latentspeed_core.datacollect.plots", None)  # as if no matplotlib
    run = make_run(tmp_path / "run[1]")
    assert main(["analyze", str(run)]) == 0
    text = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "pip install 'latentspeed-core[analysis]'" in text
    assert "pip install -e '.[analysis]'" in text  # the checkout form is still offered
    assert "run[1]" in text
