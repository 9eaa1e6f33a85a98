"""Prometheus ``/metrics`` (config ``metrics: {port, host}``): real processes scraped over loopback HTTP.

A mock exchange process, a marketstream or an engine (``engine`` and ``run``) on it with
``metrics:`` on, scraped twice with the exposition parsed by prometheus-client's own parser:
every contract metric is there and the counters move. Plus the ``metrics`` section's
validation, a busy port (exit 2 naming it), and the scrape-time histogram of t2t samples.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from latentspeed_core.testing import free_port

FEED_METRICS = [
    "latentspeed_feed_messages_total",
    "latentspeed_feed_errors_total",
    "latentspeed_feed_resyncs_total",
    "latentspeed_feed_reconnects_total",
    "latentspeed_publish_drops_total",
]
ENGINE_METRICS = ["latentspeed_orders_total", "latentspeed_fills_total", "latentspeed_pnl"]
SERVING = re.compile(r"serving Prometheus metrics on (http://\S+/metrics)")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    """``(content type, body)`` of one GET."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def samples(url: str) -> Samples:
    """Every sample of one scrape: ``(name, sorted labels) -> value``."""
    _, body = scrape(url)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }


def value(s: Samples, name: str, **labels: str) -> float:
    return s[(name, tuple(sorted(labels.items())))]


def scrape_until(url: str, cond, what: str, proc, timeout: float = 30.0) -> Samples:
    """Scrape until ``cond(samples)`` holds (the process must stay up); returns that scrape.

    Polls every 20 ms, not wait_for's 5 ms: each scrape costs the process under test CPU."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.popen.poll() is None, proc.stderr[-3000:]
        got = samples(url)
        if cond(got):
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last scrape: {got}")
        time.sleep(0.02)  # poll interval of a condition, not a synchronisation


def metrics_url(proc) -> str:
    m = SERVING.search(proc.wait_line("serving Prometheus metrics on"))
    assert m, proc.stderr
    return m.group(1)


def histogram_ok(s: Samples, name: str) -> float:
    """Cumulative buckets never decrease and ``+Inf`` is ``_count``; returns the count."""
    buckets = sorted((float(dict(labels)["le"]), v) for (n, labels), v in s.items() if n == f"{name}_bucket")
    assert buckets and buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and all(c == int(c) for c in counts)
    assert counts[-1] == value(s, f"{name}_count")
    assert value(s, f"{name}_sum") >= 0
    return counts[-1]


# -- marketstream ------------------------------------------------------------------------


def test_marketstream_metrics_move_between_scrapes(procs, mock_exchange, tmp_path):
    zport, mport = procs.free_port_pair(), free_port()
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "zmq": {"host": "127.0.0.1", "port": zport},
                "log": {"file": None},
                "metrics": {"port": mport},  # host: loopback by default
                "feeds": [{"exchange": "mock", "port": mock_exchange, "symbols": ["BTC-USD"]}],
            }
        )
    )
    ms = procs.start("marketstream", str(cfg))
    url = metrics_url(ms)
    assert url == f"http://127.0.0.1:{mport}/metrics"
    first = scrape_until(
        url, lambda s: value(s, "latentspeed_books_published_total") > 0, "a published book", ms
    )
    for name in FEED_METRICS:
        assert value(first, name, feed="mock") >= 0, name
    for name in FEED_METRICS[1:]:  # a healthy loopback feed: no errors, resyncs, reconnects, drops
        assert value(first, name, feed="mock") == 0, name
    assert value(first, "latentspeed_trades_published_total") >= 0
    moved = ["latentspeed_books_published_total", "latentspeed_trades_published_total"]

    def later(s: Samples) -> bool:
        return value(s, "latentspeed_feed_messages_total", feed="mock") > value(
            first, "latentspeed_feed_messages_total", feed="mock"
        ) and all(value(s, n) > value(first, n) for n in moved)

    scrape_until(url, later, "messages, books and trades counters to move", ms)
    # content negotiation is the library's: text 0.0.4 by default, OpenMetrics when asked
    ctype, body = scrape(url)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    ctype, body = scrape(url, accept="application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith("# EOF\n")
    assert ms.stop() == 0, ms.stderr[-3000:]
    with pytest.raises(OSError):  # the server went with the process
        scrape(url)


# -- engine: `latentspeed engine` and `latentspeed run` ----------------------------------


def _engine_config(tmp_path, venue_port: int) -> str:
    cfg = {
        "log": {"level": "info", "file": None},
        "market_data": {"feeds": [{"exchange": "mock", "port": venue_port, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "mock", "host": "127.0.0.1", "port": venue_port},
        "strategies": [
            {
                "name": "market_maker",
                "symbols": ["BTC-USD"],
                "params": {"qty": 0.01, "half_spread_bps": 1.0, "requote_bps": 3, "max_position": 0.2},
            }
        ],
        # max_open_orders 1: the maker's second quote of every requote is refused, so rejects move too
        "risk": {"max_order_qty": 1, "max_open_orders": 1, "price_band_bps": 100, "max_loss": 10000},
        "latency": {"file": None},
        "output_dir": str(tmp_path),
        "metrics": {"host": "127.0.0.1", "port": 0},  # 0: any free port, logged
    }
    path = tmp_path / "trading_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize(
    "command",
    [("engine", "--config"), ("run", "--dashboard", "off", "--no-embedded-exchange", "--config")],
    ids=["engine", "run"],
)
def test_engine_metrics_move_between_scrapes(procs, mock_exchange, tmp_path, command):
    eng = procs.start(*command, _engine_config(tmp_path, mock_exchange))
    url = metrics_url(eng)
    t2t = "latentspeed_tick_to_trade_seconds"

    def trading(s: Samples) -> bool:
        return all(
            v > 0
            for v in (
                value(s, "latentspeed_orders_total"),
                value(s, "latentspeed_fills_total"),
                value(s, "latentspeed_rejects_total", reason="max_open_orders"),
                value(s, f"{t2t}_count"),
            )
        )

    first = scrape_until(url, trading, "orders, fills, refusals and t2t samples", eng)
    for reason in ("max_loss", "max_order_qty", "price_band_bps", "venue"):  # every check, from 0
        assert value(first, "latentspeed_rejects_total", reason=reason) == 0
    assert abs(value(first, "latentspeed_position", symbol="BTC-USD")) <= 0.2 + 0.01  # the maker's limit
    assert value(first, "latentspeed_pnl") == value(first, "latentspeed_pnl")  # a number, not NaN
    assert value(first, "latentspeed_trading_enabled") == 1
    assert value(first, "latentspeed_feed_messages_total", feed="mock") > 0  # in-process feed
    n = histogram_ok(first, t2t)
    assert n <= value(first, "latentspeed_orders_total")  # timer-triggered orders are not t2t samples

    def later(s: Samples) -> bool:
        return (
            all(
                value(s, m) > value(first, m) for m in ("latentspeed_orders_total", "latentspeed_fills_total")
            )
            and value(s, "latentspeed_rejects_total", reason="max_open_orders")
            > value(first, "latentspeed_rejects_total", reason="max_open_orders")
            and value(s, f"{t2t}_count") > n
        )

    second = scrape_until(url, later, "orders, fills, refusals and t2t samples to move", eng)
    histogram_ok(second, t2t)
    for le in ("5e-06", "0.0001", "0.001", "+Inf"):  # a sample binned once stays binned
        assert value(second, f"{t2t}_bucket", le=le) >= value(first, f"{t2t}_bucket", le=le)
    assert eng.stop(20) == 0, eng.stderr[-3000:]
    m = re.search(r"SUMMARY .*orders=(\d+)", eng.stdout)
    assert m and int(m.group(1)) >= value(second, "latentspeed_orders_total"), eng.stdout


# -- configuration ---------------------------------------------------------------------------


def test_busy_metrics_port_is_a_usage_error_naming_the_port(run_cli, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ms = tmp_path / "ms.yml"
        ms.write_text(
            yaml.safe_dump(
                {
                    "zmq": {"port": free_port()},
                    "log": {"file": None},
                    "metrics": {"port": port},
                    "feeds": [{"exchange": "mock", "port": free_port(), "symbols": ["BTC-USD"]}],
                }
            )
        )
        eng = _engine_config(tmp_path, free_port())
        yaml_text = (tmp_path / "trading_config.yml").read_text().replace("port: 0", f"port: {port}")
        (tmp_path / "trading_config.yml").write_text(yaml_text)
        for args in (("marketstream", str(ms)), ("engine", "--config", eng)):
            proc = run_cli(*args, "--duration", "5", cwd=tmp_path)
            assert proc.returncode == 2, (args, proc.stderr[-2000:])
            line = proc.stderr.strip().splitlines()[-1]
            assert f"metrics.port: cannot serve metrics on 127.0.0.1:{port}" in line, proc.stderr
            assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "metrics, path, reason",
    [
        ({"port": 70000}, "metrics.port", "less than or equal to 65535"),
        ({"port": -1}, "metrics.port", "greater than or equal to 0"),
        ({"host": ""}, "metrics.host", "at least 1 character"),
        ({"prot": 9100}, "metrics.prot", "unknown key"),
        ("9100", "metrics", "MetricsConfig"),
    ],
)
def test_metrics_section_is_validated(metrics, path, reason):
    from latentspeed_core.config import ConfigError
    from latentspeed_core.engine.config import resolve as engine_resolve
    from latentspeed_core.marketstream.config import resolve as ms_resolve
    from latentspeed_core.plugins import load_registry

    registry = load_registry(["mock", "examples"])
    ms = {"feeds": [{"exchange": "mock", "symbols": ["BTC-USD"]}]}
    eng = {
        "market_data": ms,
        "venue": {"exchange": "mock"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
    }
    for resolve, data in ((ms_resolve, ms), (engine_resolve, eng)):
        assert resolve(dict(data, metrics=None), registry).config.metrics is None  # absent/null: off
        on = resolve(dict(data, metrics={}), registry).config.metrics
        assert (on.host, on.port) == ("127.0.0.1", 9100)
        with pytest.raises(ConfigError) as err:
            resolve(dict(data, metrics=metrics), registry, "c.yml")
        assert err.value.path == path and reason in err.value.reason, str(err.value)


def test_config_validate_reports_a_bad_metrics_port(run_cli, tmp_path):
    f = tmp_path / "ms.yml"
    f.write_text("feeds: [{exchange: mock, symbols: [BTC-USD]}]\nmetrics: {port: 99999}\n")
    proc = run_cli("config", "validate", str(f))
    assert proc.returncode == 2
    assert f"{f}: metrics.port:" in proc.stderr


# -- the server and the histogram, in process --------------------------------------------------


def test_server_stops_and_frees_its_port_and_a_bad_host_is_named():
    from latentspeed_core.config import ConfigError, MetricsConfig
    from latentspeed_core.metrics import serve_metrics

    srv = serve_metrics(MetricsConfig(port=0), [], None)
    assert "process_cpu_seconds_total" in scrape(srv.url)[1]
    srv.stop()
    assert not srv.thread.is_alive()
    again = serve_metrics(MetricsConfig(port=srv.port), [], None)  # the port is free again
    again.stop()
    with pytest.raises(ConfigError) as err:
        serve_metrics(MetricsConfig(host="no-such-host.invalid", port=0), [], "c.yml")
    assert err.value.path == "metrics.host"


def test_t2t_histogram_counts_every_sample_once_exactly_then_from_the_reservoir():
    import numpy as np

    from latentspeed_core.engine.latency import Samples
    from latentspeed_core.metrics import SampleHistogram

    s = Samples(cap=100, seed=1)
    h = SampleHistogram(s, bounds_s=(1e-6, 1e-5))

    def buckets() -> list[float]:
        fam = h.family("t", "t")
        return [x.value for x in fam.samples if x.name.endswith("_bucket")]

    for ns in (500, 1_000, 1_001, 20_000):  # le is inclusive: 1,000 ns is in the 1e-6 bucket
        s.add(ns)
    assert buckets() == [2, 3, 4]
    assert buckets() == [2, 3, 4]  # a scrape without new samples changes nothing
    for _ in range(96 + 1000):  # fills the cap, then 1,000 samples only the reservoir sees
        s.add(5_000)
    counts = buckets()
    assert counts[-1] == len(s) == 1100  # _count exact
    assert counts == sorted(counts) and all(c == int(c) for c in counts)
    # the 1,000 unseen samples are spread in the reservoir's proportions
    kept = np.array(s.data)
    assert counts[0] - 2 == pytest.approx(1000 * np.mean(kept <= 1_000), abs=1)
    assert counts[1] - 3 - 96 == pytest.approx(1000 * np.mean(kept <= 10_000), abs=1)
    fam = h.family("t", "t")
    total = next(x.value for x in fam.samples if x.name == "t_sum")
    assert total == pytest.approx((500 + 1_000 + 1_001 + 20_000 + 96 * 5_000 + 1000 * kept.mean()) / 1e9)


def test_grafana_dashboard_queries_only_exported_metrics():
    """deploy/grafana/latentspeed.json: valid JSON, every query balanced and on a metric we export."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from latentspeed_core.engine.core import Engine
    from latentspeed_core.engine.risk import RiskEngine
    from latentspeed_core.feed import FeedStats
    from latentspeed_core.metrics import EngineCollector, MarketstreamCollector

    engine = Engine(object(), RiskEngine([]))
    engine.portfolio.get("BTC-USD")
    feed = SimpleNamespace(name="mock", stats=FeedStats())
    collectors = [
        MarketstreamCollector([feed], SimpleNamespace(books_sent=0, trades_sent=0)),
        EngineCollector(engine, [feed]),
    ]
    exported = {s.name for c in collectors for fam in c.collect() for s in fam.samples}
    assert {*FEED_METRICS, *ENGINE_METRICS, "latentspeed_position", "latentspeed_rejects_total"} <= exported
    assert {"latentspeed_books_published_total", "latentspeed_trades_published_total"} <= exported
    dash = json.loads(
        (Path(__file__).resolve().parent.parent / "deploy/grafana/latentspeed.json").read_text()
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    used = set()
    for e in exprs:
        assert (
            e.count("(") == e.count(")") and e.count("{") == e.count("}") and e.count("[") == e.count("]")
        ), e
        used |= set(re.findall(r"\b(latentspeed_\w+|process_\w+)\b", e))
    assert used <= exported | {"process_resident_memory_bytes", "process_cpu_seconds_total"}, used - exported
    for needed in (
        "latentspeed_tick_to_trade_seconds_bucket",
        "latentspeed_rejects_total",
        "latentspeed_pnl",
    ):
        assert needed in used


def test_engine_counters_sum_like_the_stats_line_and_never_step_back():
    from latentspeed_core.engine.core import Engine
    from latentspeed_core.engine.risk import RiskEngine
    from latentspeed_core.metrics import EngineCollector

    engine = Engine(object(), RiskEngine([]))
    c = EngineCollector(engine)

    def scrape_once() -> dict:
        return {(s.name, s.labels.get("reason")): s.value for fam in c.collect() for s in fam.samples}

    engine.risk.rejects.update({"max_position": 2, "venue": 1})  # 1: an order the venue could not encode
    engine.risk_rejects, engine.venue_rejects = 3, 3
    got = scrape_once()
    assert got[("latentspeed_rejects_total", "max_position")] == 2
    assert got[("latentspeed_rejects_total", "venue")] == 4
    assert sum(v for (n, _), v in got.items() if n == "latentspeed_rejects_total") == engine.rejects
    engine.orders_sent = 5
    assert scrape_once()[("latentspeed_orders_total", None)] == 5
    engine.orders_sent = 4  # a corked batch whose write failed is taken back
    assert scrape_once()[("latentspeed_orders_total", None)] == 5
