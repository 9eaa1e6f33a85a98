"""``latentspeed backtest``: recorded Binance frames through the real feed, the market maker and ``paper``."""

from __future__ import annotations

import json
import logging
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentspeed_core.backtest import backtest_setup, fill_digest, parse_time, run_backtest
from latentspeed_core.config import ConfigError
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import binance_fixture_capture

pytest.importorskip("latentspeed_exchange_binance")
pytest.importorskip("latentspeed_strategy_examples")


def engine_config(**venue) -> dict:
    return {
        "market_data": {"feeds": [{"exchange": "binance", "symbols": ["BTC-USDT"]}]},
        "venue": {"exchange": "paper", "queue_model": "risk_averse", "entry_latency_us": 1000,
                  "response_latency_us": 1000, "seed": 1,
                  # Binance's BTC-USDT grid: quotes land on visible levels and queue behind them
                  "instruments": {"BTC-USDT": {"tick_size": 0.01, "lot_size": 0.00001}}, **venue},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USDT"],
                        "params": {"qty": 0.01, "half_spread_bps": 0, "skew_bps": 0, "requote_bps": 1, "max_position": 0.5}}],
        "risk": {"max_order_qty": 1.0, "price_band_bps": 100},
        "fees": {"maker_bps": -0.5, "taker_bps": 2.0},
        "latency": {"file": None},
    }  # fmt: skip


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return binance_fixture_capture(tmp_path_factory.mktemp("bt") / "binance.jsonl.gz", repeat=2)


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory):
    """Twenty sessions (4,780 frames): progress is reported at 4,096 as well as at the end."""
    return binance_fixture_capture(tmp_path_factory.mktemp("bt") / "binance10.jsonl.gz", repeat=20)


@pytest.fixture(scope="module")
def registry():
    return load_registry(None)


def test_backtest_command_writes_a_report_a_plot_and_the_same_digest_twice(run_cli, tmp_path, capture):
    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump(engine_config()))
    digests = []
    for i in range(2):
        out = tmp_path / f"report{i}.json"
        proc = run_cli("backtest", "--config", str(cfg), "--capture", str(capture), "--json-out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        rep = json.loads(out.read_text())
        for key in ("events", "orders", "fills", "realized_pnl", "unrealized_pnl", "position", "events_per_s",
                    "fill_digest", "settings"):  # fmt: skip
            assert key in rep, key
        assert rep["events"] > 0 and rep["orders"] > 0 and len(rep["fills"]) > 0
        f = rep["fills"][0]
        assert set(f) >= {"time", "symbol", "side", "price", "qty", "fee", "liquidity"}
        assert f["time"] == f["time_ns"] and rep["from_ns"] <= f["time"] <= rep["to_ns"]
        assert rep["fill_digest"] == fill_digest(rep["fills"])
        assert rep["settings"]["venue"]["queue_model"] == "risk_averse"
        assert (tmp_path / f"report{i}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert rep["fill_digest"] in proc.stdout
        digests.append(rep["fill_digest"])
    assert digests[0] == digests[1]


def test_fees_follow_what_happened_to_each_fill(registry, capture):
    res = run_backtest(backtest_setup(engine_config(), registry, None, str(capture)), registry)
    assert res.fills
    for f in res.fills:
        bps = -0.5 if f["liquidity"] == "maker" else 2.0
        assert f["fee"] == pytest.approx(f["price"] * f["qty"] * bps / 1e4)


def test_each_setting_is_deterministic_and_latency_changes_the_fills(registry, capture):
    def digest(**venue) -> str:
        return run_backtest(backtest_setup(engine_config(**venue), registry, None, str(capture)), registry).fill_digest

    base = digest()
    assert base == digest()
    prob = digest(queue_model="probabilistic", queue_power=3)
    assert prob == digest(queue_model="probabilistic", queue_power=3)
    assert digest(entry_latency_us=50_000) != base


def test_a_reconnect_in_the_capture_rebuilds_books_and_nothing_fills_on_the_stale_one(registry, capture):
    """The capture holds the session twice, the second after a reconnect (and a fresh snapshot)."""
    setup = backtest_setup(engine_config(), registry, None, str(capture))
    res = run_backtest(setup, registry)
    feed = res.summary["market_data"]["binance"]
    assert feed["errors"] == 0 and feed["books"] == 2 * 87  # both sessions' books, each from its snapshot
    # the reconnect: between the last frame of session 1 and the first book of session 2 nothing fills
    from latentspeed_core.capture import read_capture

    recs = list(read_capture(capture))
    connects = [r["receipt_ns"] for r in recs if r["kind"] == "connect"]
    rest2 = [r["receipt_ns"] for r in recs if r["kind"] == "rest"][1]
    assert not [f for f in res.fills if connects[1] <= f["time_ns"] < rest2]


def test_a_gap_of_years_in_the_data_skips_its_timer_ticks_and_changes_nothing_else(registry, capture, tmp_path, caplog):
    """The second session stamped 90 years later: 2.8e9 one-second ticks would never end. The
    market maker has no timer callback, so the fills are the unshifted run's, shifted."""
    from latentspeed_core.capture import Recorder, read_capture

    shift = 90 * 365 * 86_400 * 10**9
    recs = list(read_capture(capture))
    second = [i for i, r in enumerate(recs) if r["kind"] == "connect"][1]
    shifted = tmp_path / "shifted.jsonl.gz"
    with Recorder(shifted, feeds=["binance"]) as out:
        for i, r in enumerate(recs):
            t = r["receipt_ns"] + (shift if i >= second else 0)
            out.write(r["feed"], r["kind"], t, r.get("data"))
    base = run_backtest(backtest_setup(engine_config(), registry, None, str(capture)), registry)
    caplog.set_level(logging.WARNING)
    res = run_backtest(backtest_setup(engine_config(), registry, None, str(shifted)), registry)
    assert "timer ticks skipped" in caplog.text
    gap_start = recs[second]["receipt_ns"]
    expected = []
    for f in base.fills:
        t = f["time_ns"] + (shift if f["time_ns"] >= gap_start else 0)
        expected.append({**f, "time": t, "time_ns": t})
    assert res.fills == expected and len(expected) > 0


def test_from_and_to_select_a_window(registry, capture):
    whole = run_backtest(backtest_setup(engine_config(), registry, None, str(capture)), registry)
    mid = (whole.first_ns + whole.last_ns) // 2
    part = run_backtest(backtest_setup(engine_config(), registry, None, str(capture)), registry, t_to=mid)
    assert 0 < part.events < whole.events
    assert all(f["time_ns"] <= mid + 10_000_000 for f in part.fills)
    # --from inside the first session: its book is warmed up from the records before, so books
    # flow at once, not only from the second session's snapshot (87 books)
    quarter = whole.first_ns + (whole.last_ns - whole.first_ns) // 4
    late = run_backtest(backtest_setup(engine_config(), registry, None, str(capture)), registry, t_from=quarter)
    assert 87 < late.books < whole.books
    assert parse_time("2024-08-08T23:54:13Z") == 1_723_161_253_000_000_000
    assert parse_time(str(mid)) == mid
    with pytest.raises(ValueError, match="neither"):
        parse_time("yesterday")


def test_a_live_venue_config_backtests_on_paper_unchanged(registry, capture):
    data = engine_config()
    data["venue"] = {"exchange": "mock", "port": 9000}
    setup = backtest_setup(data, registry, None, str(capture))
    assert setup.config.venue.exchange == "paper"
    assert run_backtest(setup, registry).fills


def test_clear_errors(run_cli, tmp_path, capture):
    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump(engine_config()))
    proc = run_cli("backtest", "--config", str(cfg))  # no replay: and no --capture
    assert proc.returncode == 2 and "replay" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("backtest", "--config", str(cfg), "--capture", str(tmp_path / "none.gz"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_cli("backtest", "--config", str(cfg), "--capture", str(capture), "--from", "soon")
    assert proc.returncode == 2 and "neither" in proc.stderr
    proc = run_cli("backtest", "--config", str(cfg), "--capture", str(capture), "--from", "2030-01-01")
    assert proc.returncode == 1 and "no market data" in proc.stderr
    # the Binance capture replayed into a Bybit feed: every frame refused, nothing traded
    other = engine_config()
    other["market_data"]["feeds"] = [{"exchange": "bybit", "market": "linear", "symbols": ["BTC-USDT"]}]
    bybit_cfg = tmp_path / "bybit.yml"
    bybit_cfg.write_text(yaml.safe_dump(other))
    proc = run_cli("backtest", "--config", str(bybit_cfg), "--capture", str(capture))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no book or trade from the" in proc.stderr and "bybit:" in proc.stderr and "bad inputs" in proc.stderr
    for name, content in (("notes.txt", b"hello\n"), ("empty.jsonl.gz", b""), ("noise.jsonl.gz", bytes(range(256)) * 8)):
        bad = tmp_path / name
        bad.write_bytes(content)
        proc = run_cli("backtest", "--config", str(cfg), "--capture", str(bad))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"latentspeed backtest: error: {bad}: not a latentspeed-capture file (bad header)"
        ]


def test_an_output_that_cannot_be_written(run_cli, tmp_path, capture):
    cfg = tmp_path / "engine.yml"
    cfg.write_text(yaml.safe_dump(engine_config()))
    # a directory: refused before the run
    proc = run_cli("backtest", "--config", str(cfg), "--capture", str(capture), "--json-out", str(tmp_path))
    assert proc.returncode == 2 and "is a directory" in proc.stderr and "Traceback" not in proc.stderr
    # a write that fails after the run (a full disk): the summary and the other file are kept
    assert os.path.exists("/dev/full")
    png = tmp_path / "curve.png"
    proc = run_cli(
        "backtest", "--config", str(cfg), "--capture", str(capture), "--json-out", "/dev/full", "--plot", str(png)
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot write the report to /dev/full" in proc.stderr
    assert "fill digest" in proc.stdout and png.stat().st_size > 0


def test_a_config_error_in_the_venue_names_its_key(registry, capture):
    with pytest.raises(ConfigError, match="venue.queue_model"):
        backtest_setup(engine_config(queue_model="fifo"), registry, "engine.yml", str(capture))


def test_a_timer_finer_than_a_millisecond_is_a_config_error(registry, capture):
    """A 1 ns timer would tick a million times per record (minutes on a capture of seconds)."""
    with pytest.raises(ConfigError, match="timer_interval"):
        backtest_setup({**engine_config(), "timer_interval": 1e-9}, registry, "engine.yml", str(capture))
    assert backtest_setup({**engine_config(), "timer_interval": 0.001}, registry, None, str(capture))


@pytest.mark.parametrize(("window", "timer_s"), [("whole", 0.05), ("whole", 1000.0), ("to", 0.05), ("from", 0.05)])
def test_the_compiled_loop_gives_what_the_python_loop_gives(registry, long_capture, monkeypatch, window, timer_s):
    """capture.Merge.frames() takes the usual records in C; the same fills, curve, counts and progress
    calls as the Python loop over every record (the pure-Python merge has no frames()), with
    timers, fills, a reconnect, --from and --to in play."""
    from latentspeed_core import capture as capture_mod

    if capture_mod._Merge is None:
        pytest.skip("the compiled merge is not built (LATENTSPEED_PURE_PYTHON)")
    capture = long_capture
    cfg = engine_config()
    cfg["timer_interval"] = timer_s  # frequent timers, or none: long runs of frames between samples
    whole = run_backtest(backtest_setup(cfg, registry, None, str(capture)), registry)
    span = whole.last_ns - whole.first_ns
    kw = {"whole": {}, "to": {"t_to": whole.first_ns + span // 2}, "from": {"t_from": whole.first_ns + span // 4}}
    results = []
    for merge in (capture_mod._Merge, None):
        monkeypatch.setattr(capture_mod, "_Merge", merge)
        calls = []
        res = run_backtest(
            backtest_setup(cfg, registry, None, str(capture)), registry, progress=lambda n, t, calls=calls: calls.append((n, t)),
            **kw[window],
        )  # fmt: skip
        results.append((res.fills, res.curve, res.events, res.books, res.trades, res.last_ns, calls,
                        res.summary["market_data"]))  # fmt: skip
    compiled, python = results
    assert compiled == python
    assert compiled[0] and len(compiled[1]) > 2 and len(compiled[-2]) >= 2  # fills, a curve, progress every 4,096


# -- damaged captures: whatever a capture holds, a backtest ends, and ends the same way twice ----------
_JUNK = [None, 0, -1, 2**62, "x", "{}", "[1,2]", {"key": 5}, [1], 1.5, True, b"\x00\x01"]


def _damaged_capture(path, recs, ops) -> None:
    """``recs`` (real records) changed by ``ops``, written as JSON lines as a recorder would."""
    import gzip

    import orjson

    out = [dict(r) for r in recs]
    for kind, pos, pick in ops:
        i = pos % len(out)
        junk = _JUNK[pick % len(_JUNK)]
        if kind == "stamp":
            out[i]["receipt_ns"] = junk if isinstance(junk, int) and not isinstance(junk, bool) else 2**62
        elif kind == "data":
            out[i]["data"] = junk.decode("latin-1") if isinstance(junk, bytes) else junk
        elif kind == "kind":
            out[i]["kind"] = ["frame", "rest", "connect", "wat", None][pick % 5]
        elif kind == "feed":
            out[i]["feed"] = ["binance", "nope", None][pick % 3]
        elif kind == "drop":
            del out[i]
        elif kind == "dup":
            out.insert(i, dict(out[i]))
        elif kind == "swap":
            j = (i + 1 + pick) % len(out)
            out[i], out[j] = out[j], out[i]
        if not out:
            out = [dict(recs[0])]
    with gzip.open(path, "wb") as f:
        f.write(orjson.dumps({"kind": "header", "format": "latentspeed-capture", "version": 1, "feeds": ["binance"]}) + b"\n")
        for r in out:
            if isinstance(r.get("data"), bytes):
                r = {**r, "data": r["data"].decode("latin-1")}
            f.write(orjson.dumps(r) + b"\n")


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["stamp", "data", "kind", "feed", "drop", "dup", "swap"]),
        st.integers(0, 10_000),
        st.integers(0, 100),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_a_damaged_capture_is_backtested_to_its_end_the_same_way_twice(registry, capture, tmp_path, ops):
    """... and the compiled loop (which delivers frames itself) ends it as the Python loop does: the
    same fills, and the same messages and errors counted per feed."""
    from latentspeed_core import capture as capture_mod
    from latentspeed_core.capture import read_capture

    recs = list(read_capture(capture))[:700]
    path = tmp_path / "damaged.jsonl.gz"
    _damaged_capture(path, recs, ops)
    runs = [run_backtest(backtest_setup(engine_config(), registry, None, str(path)), registry) for _ in range(2)]
    assert runs[0].fill_digest == runs[1].fill_digest and runs[0].events == runs[1].events
    assert runs[0].events <= len(recs) + len(ops)
    compiled_merge, capture_mod._Merge = capture_mod._Merge, None
    try:
        python = run_backtest(backtest_setup(engine_config(), registry, None, str(path)), registry)
    finally:
        capture_mod._Merge = compiled_merge
    for run in runs:
        assert (run.fill_digest, run.events, run.summary["market_data"]) == (
            python.fill_digest, python.events, python.summary["market_data"],
        )  # fmt: skip


def test_the_compiled_loop_reports_a_frame_the_feed_refuses_as_deliver_frame_does(caplog):
    """Merge.frames() delivers a frame itself for a feed that records nothing: an exception from the
    feed's on_frame is the same counted, logged skip as Feed.deliver_frame makes of it."""
    from latentspeed_core import capture as capture_mod
    from latentspeed_core.config import FeedConfig
    from latentspeed_core.feed import Feed

    if capture_mod._Merge is None:
        pytest.skip("the compiled merge is not built (LATENTSPEED_PURE_PYTHON)")

    class Picky(Feed):
        exchange = "picky"

        def on_frame(self, data, receipt_ns):
            if data == "bad":
                raise ValueError("not a frame I know")

        async def run_live(self):  # pragma: no cover - never run
            raise NotImplementedError

    class Clock:
        now = 0

    records = [{"kind": "frame", "receipt_ns": t, "data": d} for t, d in ((1, "ok"), (2, "bad"), (3, "ok"))]
    feeds = []
    for inline in (True, False):
        feed = Picky(FeedConfig(exchange="picky"))
        fn = (feed.on_frame, feed) if inline else feed.deliver_frame
        merge = capture_mod._Merge(["picky"], [iter(records)], [0], [False])
        with caplog.at_level("WARNING"):
            n, last = merge.frames([fn], lambda t: None, Clock(), [], 10, 0, 10, 100)
        assert (n, last) == (3, 3)
        feeds.append(feed.stats.as_dict())
    assert feeds[0] == feeds[1] and feeds[0]["messages"] == 3 and feeds[0]["errors"] == 1
    assert [r.getMessage().split(": skipped input: ")[1] for r in caplog.records] == [
        "bad frame: ValueError: not a frame I know bad"
    ] * 2


@pytest.mark.parametrize("kind", ["slots", "plain", "setattr"])
def test_the_compiled_loop_moves_any_clock(kind):
    """Merge.frames() writes SimClock's ``now`` slot in place; any other clock is set as Python sets an
    attribute (a class's own ``__setattr__`` included): each frame sees its own time."""
    from latentspeed_core import capture as capture_mod
    from latentspeed_core.backtest import SimClock

    if capture_mod._Merge is None:
        pytest.skip("the compiled merge is not built (LATENTSPEED_PURE_PYTHON)")
    set_by_hand = []

    class Plain:
        now = 0

    class Watched:
        __slots__ = ("now",)

        def __setattr__(self, name, value):
            set_by_hand.append(value)
            object.__setattr__(self, name, value)

    clock = {"slots": SimClock, "plain": Plain, "setattr": Watched}[kind]()
    seen = []
    records = [{"kind": "frame", "receipt_ns": t, "data": b"x"} for t in (5, 7, 9)]
    merge = capture_mod._Merge(["f"], [iter(records)], [0], [False])
    n, last = merge.frames(
        [lambda data, t: seen.append((t, clock.now))], lambda t: None, clock, [], 100, 0, 100, 100
    )
    assert (n, last) == (3, 9)
    assert seen == [(5, 5), (7, 7), (9, 9)]
    assert set_by_hand == ([5, 7, 9] if kind == "setattr" else [])


def test_the_collectors_threshold_is_raised_for_the_run_and_restored(registry, capture, tmp_path):
    """A backtest raises the collector's thresholds (the report's objects would be walked again by each
    young and middle collection) and gives back the caller's, after a run and after a failed one."""
    import gc

    from latentspeed_core import backtest as bt

    seen = []
    before = gc.get_threshold()
    gc.set_threshold(321, 7, 9)
    try:
        res = run_backtest(
            backtest_setup(engine_config(), registry, None, str(capture)), registry,
            progress=lambda n, t: seen.append(gc.get_threshold()),
        )  # fmt: skip
        assert res.fills and gc.get_threshold() == (321, 7, 9)
        bad = tmp_path / "bad.jsonl"
        bad.write_text("not a capture\n")
        with pytest.raises(Exception):  # noqa: B017 - any failure of the run
            run_backtest(backtest_setup(engine_config(), registry, None, str(bad)), registry)
        assert gc.get_threshold() == (321, 7, 9)
    finally:
        gc.set_threshold(*before)
    assert seen and all(t == (bt.GC_THRESHOLD, bt.GC_OLDER_THRESHOLD, bt.GC_OLDER_THRESHOLD) for t in seen)


def test_a_run_leaves_no_reference_cycles_and_collects_young_ones_only(registry, long_capture, monkeypatch):
    """What the raised thresholds rely on: the hot path (feeds, features, the market maker, the paper
    venue, reports, fills) makes no reference cycles, so nothing waits for the collector; and cycles a
    strategy might make are still collected by young collections during the run, never older ones."""
    import gc

    from latentspeed_core import backtest as bt

    setup = backtest_setup(engine_config(), registry, None, str(long_capture))
    found = []
    gc.collect()
    gc.disable()
    try:
        res = run_backtest(setup, registry, progress=lambda n, t: found.append((n, gc.collect())))
    finally:
        gc.enable()
    assert res.events > 4096 and len(found) >= 3 and res.fills
    assert [f for n, f in found[1:]] == [0] * (len(found) - 1)  # no cyclic garbage after the first events

    monkeypatch.setattr(bt, "GC_THRESHOLD", 40)
    gens = []
    cb = lambda phase, info: phase == "start" and gens.append(info["generation"])  # noqa: E731
    setup = backtest_setup(engine_config(), registry, None, str(long_capture))
    before = gc.get_threshold()
    gc.set_threshold(10, 2, 2)  # a caller's: a middle collection every third young one
    gc.callbacks.append(cb)
    try:
        run_backtest(setup, registry)
    finally:
        gc.callbacks.remove(cb)
        gc.set_threshold(*before)
    assert len(gens) >= 3 and set(gens) == {0}


def test_a_feed_whose_frame_handler_fails_counts_each_frame_and_runs_on():
    """deliver_frame asks the feed for its handler at the first frame; a handler that cannot be made
    is a counted, logged error per frame, never an exception out of the transport."""
    from latentspeed_core.config import FeedConfig
    from latentspeed_core.feed import Feed

    class Broken(Feed):
        exchange = "BROKEN"

        async def run_live(self) -> None:  # pragma: no cover - not run
            pass

        def on_frame(self, data, receipt_ns) -> None:  # pragma: no cover - never reached
            raise AssertionError

        def frame_handler(self):
            raise RuntimeError("no handler")

    feed = Broken(FeedConfig(exchange="broken"))
    for i in range(3):
        feed.deliver_frame(b"{}", i)
    assert (feed.stats.messages, feed.stats.errors, feed.frame_fn) == (3, 3, None)
