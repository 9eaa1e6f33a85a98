"""Backtests: a capture replayed through the live feed code, on simulated time, into the ``paper`` venue.

The same objects as a live run (feed plugins, the marketstream Pipeline and its features,
the engine with its strategies and risk checks) are driven synchronously, record by record,
in receipt-time order. The clock every part reads is the receipt stamp of the record being
delivered, so nothing depends on how fast this machine is: the same capture, config and seed
give byte-identical fills (``fill_digest``). The venue is found through the registry like any
other component: ``paper`` (plugin ``mock``) unless the config already names a simulated venue.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from .capture import deliver, merged_records
from .config import ConfigError
from .engine.config import EngineSetup, resolve
from .engine.core import Engine, Fanout, curve_point
from .engine.risk import build_risk
from .feed import Feed
from .types import Side
from .venue import SimulatedVenue

log = logging.getLogger("latentspeed.backtest")

#: Equity and position are sampled at most this often (simulated time), and at every fill.
SAMPLE_NS = 1_000_000_000
#: Timer ticks run one by one through a gap in the data up to this many (11.6 days at 1 s).
TIMER_TICKS_MAX = 1_000_000


class SimClock:
    """The simulated wall clock: the receipt stamp of the input being handled."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def time_ns(self) -> int:
        return self.now


@dataclass
class BacktestResult:
    events: int = 0
    books: int = 0
    trades: int = 0
    wall_s: float = 0.0
    first_ns: int = 0
    last_ns: int = 0
    fills: list[dict] = field(default_factory=list)
    #: (time_ns, pnl, {symbol: position}) samples for the equity plot.
    curve: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def fill_digest(self) -> str:
        return fill_digest(self.fills)

    def report(self) -> dict:
        s = self.summary
        return {
            "events": self.events,
            "books": self.books,
            "trades": self.trades,
            "orders": s["orders"],
            "fills": self.fills,
            "fill_count": len(self.fills),
            "realized_pnl": s["realized_pnl"],
            "unrealized_pnl": s["unrealized_pnl"],
            "fees": s["fees"],
            "pnl": s["pnl"],
            # a sum of float fills: 0.04, not 0.039999999999999994 (positions are whole lots)
            "position": {k: round(v, 12) for k, v in s["positions"].items()},
            "rejects": {"risk": s["risk_rejects"], "venue": s["venue_rejects"]},
            "events_per_s": round(self.events_per_s, 1),
            "wall_s": round(self.wall_s, 3),
            "from_ns": self.first_ns,
            "to_ns": self.last_ns,
            "fill_digest": self.fill_digest,
            "settings": self.settings,
            "feeds": s.get("market_data", {}),
        }


def fill_digest(fills: list[dict]) -> str:
    """sha256 of the fills list as canonical JSON (sorted keys): equal digests, equal fills."""
    return hashlib.sha256(orjson.dumps(fills, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_time(text: str) -> int:
    """``--from``/``--to``: ns since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither nanoseconds since the epoch nor an ISO 8601 time") from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000_000)


def backtest_setup(data: dict, registry, file: str | None, capture: str | None = None) -> EngineSetup:
    """The engine config made ready for a backtest: every feed replays, the venue is simulated.

    ``capture`` overrides every feed's ``replay``. A config whose venue is not simulated (a live
    venue, the mock exchange) trades on ``paper`` with its defaults: the strategy is unchanged."""
    data = dict(data)
    md = dict(data.get("market_data") or {})
    feeds = [dict(f) for f in md.get("feeds") or []]
    if md.get("zmq") is not None or md.get("from_venue"):
        raise ConfigError(file, "market_data", "a backtest replays feeds: give market_data.feeds (with replay:)")
    if capture is not None:
        if not Path(capture).exists():
            raise ConfigError(file, "--capture", f"{capture}: no such file")
        for f in feeds:
            f["replay"] = capture
    for i, f in enumerate(feeds):
        if not f.get("replay"):
            raise ConfigError(file, f"market_data.feeds[{i}].replay", "a backtest needs a capture: give replay: FILE or --capture")
    md["feeds"] = feeds
    data["market_data"] = md
    venue = data.get("venue") or {}
    if str(venue.get("exchange", "")).lower() != "paper":
        if "paper" not in registry.venues:
            raise ConfigError(
                file, "venue", "a backtest needs the 'paper' venue: pip install latentspeed-mock-exchange "
                "(plugin 'mock') and select it",
            )  # fmt: skip
        if venue.get("exchange"):
            log.info("backtest: venue %s replaced by the simulated venue 'paper'", venue.get("exchange"))
        data["venue"] = {"exchange": "paper"}
    return resolve(data, registry, file)


#: The collector's thresholds during a backtest (CPython's default: 700, 10, 10). A backtest keeps what
#: its report needs (every fill, the curve, the orders' records): on the benchmark's capture ~100,000
#: tracked objects a run, about one for every two events, and nothing else survives an event. Each
#: collection walks every object of its generations, so each kept object cost a walk in the young
#: collection after it was made and another in the next middle one: at (10,000, 10, 10), 11 young and
#: 1 middle collection took 45-60 ms of a 1.1 s run (4-5 %; the middle one 27-31 ms). Here the young
#: generation is collected once a million objects more were made than freed, and the older ones not
#: at all until the run ends (the caller's thresholds are back then): each kept object is walked at
#: most once during the run, and reference cycles a strategy leaves behind are still collected,
#: a million objects at a time.
GC_THRESHOLD = 1_000_000
#: The older generations' thresholds during a backtest: never reached by a run.
GC_OLDER_THRESHOLD = 1_000_000


def run_backtest(
    setup: EngineSetup,
    registry,
    *,
    t_from: int | None = None,
    t_to: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Replay the setup's captures through feeds, features, strategies, risk and the simulated venue."""
    old = gc.get_threshold()
    gc.set_threshold(max(GC_THRESHOLD, old[0]), max(GC_OLDER_THRESHOLD, old[1]), max(GC_OLDER_THRESHOLD, old[2]))
    try:
        return _run_backtest(setup, registry, t_from, t_to, progress)
    finally:
        gc.set_threshold(*old)


def _run_backtest(setup: EngineSetup, registry, t_from, t_to, progress) -> BacktestResult:
    from .marketstream.features import build_calculators
    from .marketstream.pipeline import Pipeline

    cfg = setup.config
    clock = SimClock()
    venue = registry.get("venues", cfg.venue.exchange.lower()).factory(setup.venue)
    if not isinstance(venue, SimulatedVenue):
        raise ConfigError(setup.file, "venue.exchange", f"venue {cfg.venue.exchange!r} cannot be simulated")
    engine = Engine(
        venue, build_risk(setup.risk_checks), maker_bps=cfg.fees.maker_bps, taker_bps=cfg.fees.taker_bps,
        clock=clock.time_ns,
    )  # fmt: skip
    engine.recent_fills = deque()  # every fill, for the report
    for rs in setup.strategies:
        engine.add_strategy(rs.id, rs.component.factory(rs.params), rs.symbols)
    feeds = []
    for fcfg, name in zip(setup.feeds, setup.feed_names, strict=True):
        feed = registry.get("feeds", fcfg.exchange.lower()).factory(fcfg)
        feed.name = name
        feed.reset_listener = venue.on_book_reset
        feeds.append(feed)
    by_name = {f.name: f for f in feeds}
    md = cfg.market_data
    result = BacktestResult()
    on_book_venue, on_trade_venue = venue.on_book_message, venue.on_trade_message
    on_book_engine, on_trade_engine = engine.on_book, engine.on_trade

    # (Books and trades are counted by the engine: each reaches Engine.on_book / on_trade once.)
    rx0, trades0 = engine.rx_packets, engine.trades_rx

    # The venue sees each message first (its clock moves, what is due happens), then the engine.
    if Fanout is not None:
        emit_book = Fanout(on_book_venue, on_book_engine)
        emit_trade = Fanout(on_trade_venue, on_trade_engine)
    else:

        def emit_book(topic: str, msg: dict) -> None:
            on_book_venue(msg)
            on_book_engine(msg)

        def emit_trade(topic: str, msg: dict) -> None:
            on_trade_venue(msg)
            on_trade_engine(msg)

    def warming(topic: str, msg: dict) -> None:
        """Before --from: the feeds build their books, nothing reaches the venue or the strategies."""

    pipeline = Pipeline(
        md.window_size, md.depth_levels, build_calculators(registry, md.window_size, md.depth_levels, md.features),
        emit_book, emit_trade,
    )  # fmt: skip
    for f in feeds:
        f.sink = pipeline
    venue.attach(engine)
    engine.started_ns = 0
    engine.start()
    timer_ns = round(cfg.timer_interval * 1e9)
    next_timer = None
    next_sample = None
    fills_seen = 0
    curve = result.curve
    portfolio = engine.portfolio
    fills = engine.recent_fills
    advance = venue.advance
    events = 0
    # Per feed, its frame input (frames are nearly every record: no deliver() call for them).
    frame_of = {name: f.deliver_frame for name, f in by_name.items()}
    warm = False
    wall0 = time.perf_counter()
    sources = [(name, f.replay) for f, name in zip(setup.feeds, setup.feed_names, strict=True)]
    merged = merged_records(sources)
    # The compiled merge takes the usual records itself (frames between timers and samples: what
    # this loop does with them, without a Python turn each); the loop below owns every other rule.
    run_frames = getattr(merged, "frames", None)

    def frame_input(name: str):
        """What Merge.frames() calls with a feed's frames: (on_frame, feed) has it inline
        Feed.deliver_frame, for a feed that records nothing and does not override it (on_frame or
        the feed's compiled equivalent, Feed.frame_handler)."""
        f = by_name[name]
        if f.recorder is None and type(f).deliver_frame is Feed.deliver_frame:
            if f.frame_fn is None:
                f.frame_fn = f.frame_handler()
            return (f.frame_fn, f)
        return frame_of[name]

    fns = [frame_input(name) for name, _path in sources]
    lo = t_from if t_from is not None else -(1 << 63)
    hi = t_to if t_to is not None else (1 << 63) - 1
    for t, name, rec in merged:
        if t_from is not None and t < t_from:
            # Before --from the feeds still build their books (a book needs its snapshot), but
            # nothing reaches the venue or the strategies.
            if not warm:
                warm = True
                pipeline.emit_book = pipeline.emit_trade = warming
            deliver(by_name[name], rec, t)
            continue
        if warm:
            warm = False
            pipeline.emit_book, pipeline.emit_trade = emit_book, emit_trade
        if t_to is not None and t > t_to:
            break
        if next_timer is None:
            result.first_ns = t
            next_timer = t + timer_ns
            next_sample = t
        advance(t)  # orders and reports due before this input happen first
        if t - next_timer >= TIMER_TICKS_MAX * timer_ns:
            # A gap in the data longer than any strategy needs every tick of (a capture stitched
            # from two days, a clock that jumped): one tick at its start, then on from its end.
            clock.now = next_timer
            engine.on_timer(next_timer)
            advance(next_timer)
            ticks = (t - next_timer) // timer_ns
            log.warning("backtest: no input for %.0f s of simulated time: %d timer ticks skipped",
                        (t - next_timer) / 1e9, ticks - 1)  # fmt: skip
            next_timer += ticks * timer_ns
        while next_timer <= t:
            clock.now = next_timer
            engine.on_timer(next_timer)
            advance(next_timer)
            next_timer += timer_ns
        clock.now = t
        if rec.get("kind") == "frame":
            frame_of[name](rec.get("data", b""), t)
            events += 1
        else:
            deliver(by_name[name], rec, t)
        if len(fills) != fills_seen or t >= next_sample:
            fills_seen = len(fills)
            curve.append(curve_point(t, portfolio))
            next_sample = t + SAMPLE_NS
        if progress is not None and not events % 4096:
            progress(events, t)
        if run_frames is not None and not warm:
            # frames up to the next timer or sample; after one that filled, the curve's sample (as
            # above) and on to the next timer or the sample after it
            n, t, sampled = run_frames(
                fns, advance, clock, fills, min(next_timer, next_sample), lo, hi,
                4096 - events % 4096 if progress is not None else 1 << 62,
                (curve, curve_point, portfolio, next_timer, SAMPLE_NS),
            )  # fmt: skip
            if n:
                events += n
                if sampled >= 0:
                    fills_seen = len(fills)
                    next_sample = sampled + SAMPLE_NS
                if progress is not None and not events % 4096:
                    progress(events, t)
    # The end of the data: what is in flight still happens (acks, fills of orders already sent).
    venue.drain()
    clock.now = venue.now if hasattr(venue, "now") else clock.now
    result.wall_s = time.perf_counter() - wall0
    result.events = events
    result.trades = trades = engine.trades_rx - trades0
    result.books = engine.rx_packets - rx0 - trades
    result.last_ns = clock.now
    curve.append(curve_point(clock.now, portfolio))
    result.fills = [_fill_dict(f) for f in engine.recent_fills]
    s = engine.stats()
    s["market_data"] = {f.name: f.stats.as_dict() for f in feeds}
    result.summary = s
    result.settings = {
        "venue": {"exchange": cfg.venue.exchange, **setup.venue.model_dump(mode="json")},
        "fees": cfg.fees.model_dump(mode="json"),
        "captures": sorted({f.replay for f in setup.feeds}),
        "strategies": [{"id": r.id, "name": r.name, "symbols": r.symbols} for r in setup.strategies],
        "from_ns": t_from,
        "to_ns": t_to,
        "timer_interval": cfg.timer_interval,
    }
    if progress is not None:
        progress(events, clock.now)
    return result


def _fill_dict(f) -> dict:
    """A fill as the report gives it: ``time`` (the issue's name) and ``time_ns`` (the name reports
    had first) are both the report's arrival at the engine, in ns since the epoch."""
    return {
        "time": f.timestamp_ns,
        "time_ns": f.timestamp_ns,
        "cl_ord_id": f.cl_ord_id,
        "symbol": f.symbol,
        "side": "buy" if f.side == Side.BUY else "sell",
        "price": f.price,
        "qty": f.qty,
        "fee": f.fee,
        "liquidity": {1: "maker", 2: "taker"}.get(f.liquidity, "unknown"),
    }


def write_report(result: BacktestResult, path: str | Path) -> Path:
    p = Path(path)
    p.write_bytes(orjson.dumps(result.report(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return p


def plot_curve(result: BacktestResult, path: str | Path) -> Path | None:
    """PNG of equity (PnL) and position over simulated time; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no plot: matplotlib is not installed (pip install 'latentspeed-core[analysis]')")
        return None
    curve = result.curve
    t0 = curve[0][0] if curve else 0
    xs = [(t - t0) / 1e9 for t, _, _ in curve]
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 5))
    ax1.plot(xs, [p for _, p, _ in curve], drawstyle="steps-post")
    ax1.set_ylabel("PnL (quote)")
    ax1.set_title(f"backtest: {len(result.fills)} fills, digest {result.fill_digest[:12]}")
    symbols = sorted({s for _, _, pos in curve for s in pos})
    for s in symbols:
        ax2.plot(xs, [pos.get(s, 0.0) for _, _, pos in curve], drawstyle="steps-post", label=s)
    ax2.set_ylabel("position")
    ax2.set_xlabel("seconds since start")
    if symbols:
        ax2.legend(loc="best")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
