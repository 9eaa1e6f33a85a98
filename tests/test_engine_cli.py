"""``latentspeed run`` and ``latentspeed engine`` as a user runs them: separate processes, loopback only."""

from __future__ import annotations

import re
import signal

import orjson
import pytest
import yaml

ORDER_KEYS = {
    "type", "cl_ord_id", "symbol", "side", "md_receipt_ns", "decision_ns", "sent_ns", "ack_ns",
    "first_fill_ns", "final_ns", "status", "filled_qty",
}  # fmt: skip
STATS_KEYS = {
    "type",
    "ts_ns",
    "rx_packets",
    "orders",
    "fills",
    "rejects",
    "positions",
    "realized_pnl",
    "unrealized_pnl",
}
STATS_LINE = re.compile(
    r"STATS rx_packets=(\d+) orders=(\d+) fills=(\d+) rejects=(\d+) position=(\S+) pnl=(-?[\d.]+) "
    r"t2t_p50_us=([\d.]+|nan) t2t_p99_us=([\d.]+|nan)$"
)


def _summary_counts(text: str) -> dict[str, int]:
    m = re.search(r"SUMMARY .*rx_packets=(\d+) orders=(\d+) fills=(\d+) rejects=(\d+)", text)
    assert m, text
    return dict(zip(("rx_packets", "orders", "fills", "rejects"), map(int, m.groups()), strict=True))


def test_run_embedded_default_exits_0_and_reports_orders_and_fills(run_cli, tmp_path):
    proc = run_cli("run", "--duration", "5", timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _summary_counts(proc.stdout)
    assert counts["orders"] > 0 and counts["fills"] > 0 and counts["rx_packets"] > 0
    assert STATS_LINE.search(proc.stdout.splitlines()[0]), proc.stdout  # stats lines without a terminal
    # ...once: not also logged on stderr (issue 17), where only the final line at shutdown appears
    assert proc.stdout.count("STATS rx_packets") >= 2 and proc.stderr.count("STATS rx_packets") <= 1
    # one count, one source: the exchange's summary line is the one it logged when it stopped
    ex_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY mock exchange: "))
    assert ex_line.removeprefix("SUMMARY mock exchange: ") in proc.stderr
    # refused cancels (a cancel that met a fill) counted under one name on both sides, apart from
    # refused orders; the engine counts only the reports that reached it before it stopped
    ours = int(re.search(r"^SUMMARY duration_s.* cancel_rejects=(\d+) ", proc.stdout, re.M).group(1))
    theirs = int(re.search(r" cancel_rejects=(\d+) ", ex_line).group(1))
    assert ours <= theirs, (ours, ex_line)
    assert "Connected to exchange" in proc.stderr
    assert not list(tmp_path.iterdir())  # the embedded default writes no files


def _engine_config(tmp_path, venue_port: int, market_data: dict) -> str:
    cfg = {
        "log": {"level": "info", "file": str(tmp_path / "trading_engine.log")},
        "market_data": market_data,
        "venue": {"exchange": "mock", "host": "127.0.0.1", "port": venue_port},
        "strategies": [
            {
                "name": "market_maker",
                "symbols": ["BTC-USD"],
                "params": {"qty": 0.01, "half_spread_bps": 1.0, "requote_bps": 3, "max_position": 0.2},
            }
        ],
        "risk": {"max_order_qty": 1, "max_position": 1, "price_band_bps": 100, "max_loss": 10000},
        "latency": {"file": str(tmp_path / "latency.jsonl")},
        "stats_interval": 0.5,
    }
    path = tmp_path / "trading_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _wait_trading(proc, timeout=30.0) -> None:
    """Until a STATS line on stderr shows orders and fills."""
    from latentspeed_core.testing import wait_for

    def trading() -> bool:
        for line in proc.stderr.splitlines():
            m = STATS_LINE.search(line.rstrip())
            if m and int(m.group(2)) > 0 and int(m.group(3)) > 0:
                return True
        assert proc.popen.poll() is None, proc.stderr[-3000:]
        return False

    wait_for(trading, timeout, "a STATS line with orders and fills")


def test_engine_against_mock_exchange_process_sigterm_exit_0(procs, mock_exchange, tmp_path):
    cfg = _engine_config(
        tmp_path,
        mock_exchange,
        {"feeds": [{"exchange": "mock", "port": mock_exchange, "symbols": ["BTC-USD"]}]},
    )
    eng = procs.start("engine", "--config", cfg, "--cpu-affinity", "0")
    eng.wait_line("pinned to CPUs [0]")
    eng.wait_line("Connected to exchange")
    _wait_trading(eng)
    eng.popen.send_signal(signal.SIGTERM)
    assert eng.wait(20) == 0, eng.stderr[-3000:]
    counts = _summary_counts(eng.stdout)
    assert counts["orders"] > 0 and counts["fills"] > 0
    assert "Connected to exchange" in (tmp_path / "trading_engine.log").read_text()
    recs = [orjson.loads(x) for x in (tmp_path / "latency.jsonl").read_bytes().splitlines()]
    orders = [r for r in recs if r["type"] == "order"]
    assert orders and all(ORDER_KEYS <= set(r) for r in orders)
    assert len({r["cl_ord_id"] for r in orders}) == len(orders) == counts["orders"]
    # cancel_on_exit: nothing left open at the end.
    assert {r["status"] for r in orders} <= {"filled", "canceled", "rejected"}
    assert all(STATS_KEYS <= set(r) for r in recs if r["type"] == "stats")
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["orders"] == counts["orders"]
    assert STATS_KEYS - {"type"} | {"pnl", "duration_s"} <= set(summary)


@pytest.mark.parametrize("form", ["zmq section", "zmq feed"])
def test_engine_trades_on_marketstream_over_zmq(procs, mock_exchange, tmp_path, form):
    """Issue 5's "zmq feed" is also written as a feed entry: ``feeds: [{exchange: zmq, ...}]``."""
    port = procs.free_port_pair()
    ms_cfg = tmp_path / "config.yml"
    ms_cfg.write_text(
        yaml.safe_dump(
            {
                "zmq": {"host": "127.0.0.1", "port": port},
                "log": {"file": None},
                "feeds": [{"exchange": "mock", "port": mock_exchange, "symbols": ["BTC-USD"]}],
                "stats_interval": 1.0,
            }
        )
    )
    ms = procs.start("marketstream", str(ms_cfg))
    source = {"host": "127.0.0.1", "port": port}
    md = {"zmq": source} if form == "zmq section" else {"feeds": [{"exchange": "zmq", **source}]}
    cfg = _engine_config(tmp_path, mock_exchange, md)
    eng = procs.start("engine", "--config", cfg)
    eng.wait_line("Connected to exchange")
    _wait_trading(eng)
    assert eng.stop() == 0, eng.stderr[-3000:]
    counts = _summary_counts(eng.stdout)
    assert counts["orders"] > 0 and counts["fills"] > 0 and counts["rx_packets"] > 0
    assert ms.stop() == 0


def test_a_zmq_feed_stands_alone_and_its_mistakes_are_named_where_written(run_cli, tmp_path):
    both = _engine_config(tmp_path, 9, {"feeds": [{"exchange": "zmq", "port": 5556}, {"exchange": "mock", "port": 9}]})
    proc = run_cli("config", "validate", both)
    assert proc.returncode == 2 and "market_data: a zmq feed" in proc.stderr and "give it alone" in proc.stderr
    typo = _engine_config(tmp_path, 9, {"feeds": [{"exchange": "zmq", "prot": 5556}]})
    proc = run_cli("config", "validate", typo)
    assert proc.returncode == 2 and "market_data.feeds[0].prot: unknown key" in proc.stderr, proc.stderr


def test_engine_config_typo_is_exit_2_with_key_path(run_cli, tmp_path):
    cfg = _engine_config(tmp_path, 9, {"feeds": [{"exchange": "mock", "port": 9}]})
    data = yaml.safe_load(open(cfg))
    data["strategies"][0]["params"]["half_spred_bps"] = 2
    open(cfg, "w").write(yaml.safe_dump(data))
    proc = run_cli("engine", "--config", cfg)
    assert proc.returncode == 2
    assert "strategies[0].params.half_spred_bps: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("config", "validate", cfg)
    assert proc.returncode == 2 and "strategies[0].params.half_spred_bps" in proc.stderr


def test_a_failing_market_data_source_stops_cleanly_with_exit_1(run_cli, tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "market_data": {
                    "feeds": [
                        {
                            "exchange": "mock",
                            "port": 9,
                            "symbols": ["BTC-USD"],
                            "replay": str(tmp_path / "none.gz"),
                        }
                    ]
                },
                "venue": {"exchange": "mock", "port": 9},
                "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
                "latency": {"file": None},
            }
        )
    )
    proc = run_cli("engine", "--config", str(cfg), "--duration", "10", timeout=30)
    assert proc.returncode == 1
    assert "error: task market-data failed" in proc.stderr and "Traceback" not in proc.stderr
    assert "SUMMARY" in proc.stdout


def test_run_plugins_dydx_mock_paper_trades_on_replayed_dydx_books(run_cli, tmp_path):
    """``latentspeed run --plugins dydx,mock --config FILE``: dYdX books (a replayed recording) price the
    embedded mock exchange; the strategy's plugin loads although --plugins does not name it."""
    import time

    import pytest

    pytest.importorskip("latentspeed_exchange_dydx")
    from latentspeed_core.capture import Recorder
    from latentspeed_core.testing import fixtures_dir, free_port

    snapshot = (
        fixtures_dir() / "dydx" / "ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json"
    ).read_text()
    capture = tmp_path / "dydx_eth.jsonl.gz"
    t0 = time.time_ns()
    with Recorder(capture) as rec:
        rec.write("dydx", "connect", t0, None)
        for i in range(200):  # the recorded snapshot again every 25 ms: 5 s of books
            rec.write("dydx", "frame", t0 + i * 25_000_000, snapshot)
    cfg = tmp_path / "paper.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "market_data": {
                    "feeds": [
                        {"exchange": "dydx", "symbols": ["ETH-USD"], "replay": str(capture), "speed": 1.0}
                    ]
                },
                "venue": {"exchange": "mock", "port": free_port()},
                "strategies": [{"name": "market_maker", "symbols": ["ETH-USD"], "params": {"qty": 0.01}}],
                "risk": {"max_order_qty": 1, "price_band_bps": 100},
                "latency": {"file": None},
                "stats_interval": 1.0,
            }
        )
    )
    proc = run_cli("run", "--plugins", "dydx,mock", "--config", str(cfg), "--duration", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "paper trading: the mock exchange takes its books from dydx" in proc.stderr
    counts = _summary_counts(proc.stdout)
    assert counts["orders"] > 0 and counts["rx_packets"] > 0
    # Quotes around dYdX's mid, on the mock's ETH-USD tick grid: neither risk nor the venue refused any.
    assert counts["rejects"] == 0


def test_engine_outputs_go_to_one_run_directory_and_it_says_where(run_cli, tmp_path, mock_exchange):
    """Issue 17: latency.jsonl and the log file no longer land in the current directory."""
    import yaml

    port = mock_exchange
    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump({
        "log": {"level": "info", "file": "trading_engine.log"},
        "market_data": {"feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "mock", "port": port},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
        "latency": {"file": "latency.jsonl"},
        "output_dir": "out/run-{time}",
    }))  # fmt: skip
    work = tmp_path / "cwd"
    work.mkdir()
    proc = run_cli("engine", "--config", str(cfg), "--duration", "2", cwd=work, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((work / "out").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run-")
    assert sorted(p.name for p in runs[0].iterdir()) == ["latency.jsonl", "trading_engine.log"]
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # nothing else in the current directory
    assert f"run outputs in out/{runs[0].name}/" in proc.stderr
    assert f"SUMMARY outputs: out/{runs[0].name}/" in proc.stdout
