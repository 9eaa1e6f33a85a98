"""Prometheus ``/metrics`` for marketstream and the engine (config ``metrics: {port, host}``).

Why collectors and not prometheus-client's ``Counter.inc()``: the hot path already counts
everything (``FeedStats``, the publisher's counters, the engine's counters, risk refusals and
tick-to-trade samples). The collectors here read those plain numbers when Prometheus scrapes,
so no message pays for a metric (``inc()`` takes a lock per call). The library still does what
is easy to get wrong by hand: the exposition format and its escaping, ``_total``/``_bucket``/
``le`` conventions, content negotiation (OpenMetrics or text, gzip), and a threaded server.

Threads: the server is prometheus-client's (``start_http_server``: a daemon thread, plus one
per scrape), never the event loop. A scrape reads ints (atomic under the GIL) and takes copies
of dicts and arrays in one C call (``dict(d)``, ``list(d.values())``, an ``array`` slice), so an
insert on the loop thread cannot break an iteration and no buffer of the hot path is exported
(an exported ``array`` could not grow). Values of one scrape may be a message apart.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .config import ConfigError, MetricsConfig

if TYPE_CHECKING:
    from .engine.core import Engine
    from .engine.latency import Samples
    from .feed import Feed
    from .marketstream.publisher import Publisher

log = logging.getLogger("latentspeed.metrics")

#: ``FeedStats`` field -> (metric, help). Label ``feed``: the feed's name (``binance``, ``mock#1``).
FEED_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages", "latentspeed_feed_messages_total", "Raw frames received from the venue."),
    ("books", "latentspeed_feed_books_total", "Book updates the feed produced."),
    ("trades", "latentspeed_feed_trades_total", "Trades the feed produced."),
    ("errors", "latentspeed_feed_errors_total", "Inputs skipped: bad frames, crossed or invalid books."),
    ("resyncs", "latentspeed_feed_resyncs_total", "Books rebuilt from a fresh snapshot."),
    ("reconnects", "latentspeed_feed_reconnects_total", "Venue connections re-established."),
    ("publish_drops", "latentspeed_publish_drops_total", "Messages that met a full subscriber queue."),
)

#: Tick-to-trade bucket bounds (seconds): fine from 5 µs to 1 ms, where p50 and p99 live
#: (docs/performance.md), coarse up to 1 s for a stalled loop.
T2T_BUCKETS: tuple[float, ...] = (
    5e-6, 1e-5, 1.5e-5, 2e-5, 3e-5, 4e-5, 5e-5, 7.5e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4,
    1e-3, 2e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0,
)  # fmt: skip


def feed_metrics(feeds: Sequence[Feed]) -> Iterator[Metric]:
    """One counter family per ``FeedStats`` field, one series per feed."""
    for field, name, doc in FEED_COUNTERS:
        fam = CounterMetricFamily(name, doc, labels=["feed"])
        for feed in feeds:
            fam.add_metric([feed.name], getattr(feed.stats, field))
        yield fam


class MarketstreamCollector(Collector):
    """The feeds' stats and the ZeroMQ publisher's counters, read at scrape time."""

    def __init__(self, feeds: Sequence[Feed], publisher: Publisher | None) -> None:
        self.feeds = list(feeds)
        self.publisher = publisher

    def collect(self) -> Iterator[Metric]:
        yield from feed_metrics(self.feeds)
        pub = self.publisher
        if pub is None:  # ``latentspeed record``: nothing is published
            return
        yield CounterMetricFamily(
            "latentspeed_books_published_total", "Book messages queued on ZeroMQ.", value=pub.books_sent
        )
        yield CounterMetricFamily(
            "latentspeed_trades_published_total", "Trade messages queued on ZeroMQ.", value=pub.trades_sent
        )


class SampleHistogram:
    """A Prometheus histogram of a :class:`~latentspeed_core.engine.latency.Samples`, built at scrape time.

    It counts every sample since the engine started, once: each scrape bins the samples added
    since the previous one, so counts are integers that never decrease (``rate()`` works).
    ``Samples`` keeps every sample up to its ``cap`` (65,536), so up to there the histogram is
    exact. Beyond it the engine keeps a uniform reservoir of the session; the samples that arrived
    since the last scrape are then unknown one by one, and are spread over the buckets in the
    reservoir's proportions (largest remainder, so ``_count`` stays exact and ``_sum`` is
    ``new × reservoir mean``): an estimate of the session's distribution, not of the last minute.
    The proportions are re-read when the session has grown by 1 % since (binning the reservoir
    costs ~1.5 ms under the GIL; new in-order samples cost microseconds).
    """

    def __init__(self, samples: Samples, bounds_s: Sequence[float] = T2T_BUCKETS) -> None:
        self.samples = samples
        self.bounds_s = tuple(bounds_s)
        self._bounds_ns = np.array([round(b * 1e9) for b in self.bounds_s], dtype=np.int64)
        #: Per bucket (last: +Inf), not cumulative.
        self._counts = np.zeros(len(self.bounds_s) + 1, dtype=np.int64)
        self._sum_ns = 0.0
        #: Samples already binned.
        self._seen = 0
        #: The reservoir's share per bucket and mean (ns), and the session size they were read at.
        self._shares: np.ndarray | None = None
        self._mean_ns = 0.0
        self._shares_at = 0
        self._lock = threading.Lock()  # concurrent scrapes (one thread each)

    def _bin(self, values: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self._bounds_ns, values, side="left")  # first bound >= value: le
        return np.bincount(idx, minlength=len(self._counts))

    def update(self) -> None:
        """Bin what was added since the last call (see the class docstring)."""
        with self._lock:
            s = self.samples
            total = len(s)
            new = total - self._seen
            if new <= 0:
                return
            # In order and exact while the engine only appends (an array slice: one C call, a copy).
            exact = np.frombuffer(s.data[self._seen : self._seen + new], dtype=np.int64)
            if len(exact):
                self._counts += self._bin(exact)
                self._sum_ns += float(exact.sum())
            rest = new - len(exact)
            if rest > 0:
                if self._shares is None or total - self._shares_at >= self._shares_at // 100:
                    kept = np.frombuffer(s.data[:], dtype=np.int64)
                    self._shares = self._bin(kept) / len(kept)
                    self._mean_ns = float(kept.mean())
                    self._shares_at = total
                share = self._shares * rest
                add = np.floor(share).astype(np.int64)
                short = rest - int(add.sum())
                if short:
                    add[np.argsort(add - share)[:short]] += 1  # largest remainders first
                self._counts += add
                self._sum_ns += rest * self._mean_ns
            self._seen = total

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        self.update()
        with self._lock:
            cumulative = np.cumsum(self._counts)
            buckets = [
                (floatToGoString(b), float(c)) for b, c in zip(self.bounds_s, cumulative[:-1], strict=True)
            ]
            buckets.append(("+Inf", float(cumulative[-1])))
            return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self._sum_ns / 1e9)


class EngineCollector(Collector):
    """Orders, fills, refusals, positions, PnL and tick-to-trade of a running :class:`Engine`."""

    def __init__(self, engine: Engine, feeds: Sequence[Feed] = ()) -> None:
        self.engine = engine
        self.feeds = list(feeds)
        self.t2t = SampleHistogram(engine.t2t)
        self.round_trip = SampleHistogram(engine.round_trip)
        #: Series that exist from the start (at 0), so ``rate()`` sees their first refusal.
        self.reasons = [name for name, _ in engine.risk.checks] + ["venue"]
        # ``orders_sent`` steps back by the orders of a batch whose write failed (they never left):
        # a counter must not, so the highest value seen is exposed.
        self._orders = 0

    def collect(self) -> Iterator[Metric]:
        e = self.engine
        yield from feed_metrics(self.feeds)
        yield CounterMetricFamily(
            "latentspeed_market_data_messages_total", "Book and trade messages the engine received.",
            value=e.rx_packets,
        )  # fmt: skip
        self._orders = max(self._orders, e.orders_sent)
        yield CounterMetricFamily("latentspeed_orders_total", "Orders sent to the venue.", value=self._orders)
        yield CounterMetricFamily(
            "latentspeed_fills_total", "Fills (execution reports with a fill).", value=e.fills
        )
        rejects = CounterMetricFamily(
            "latentspeed_rejects_total",
            "Orders refused: by the risk check named in reason, after a halt (trading halted), or by the venue.",
            labels=["reason"],
        )
        # Keys as the engine counts refusals: a check's name, "trading halted", "venue" (an order the
        # venue plugin could not encode); the venue's own REJECTED reports join "venue". The sum
        # over reasons is the STATS line's ``rejects``.
        by_check = dict.fromkeys(self.reasons, 0)
        by_check.update(dict(e.risk.rejects))
        by_check["venue"] += e.venue_rejects
        for reason, n in by_check.items():
            rejects.add_metric([reason], n)
        yield rejects
        positions = list(e.portfolio.positions.values())
        pos = GaugeMetricFamily("latentspeed_position", "Signed position (long > 0).", labels=["symbol"])
        for p in positions:
            pos.add_metric([p.symbol], p.qty)
        yield pos
        yield GaugeMetricFamily(
            "latentspeed_pnl",
            "PnL: realized + unrealized (at mid) - fees.",
            value=sum(p.pnl for p in positions),
        )
        yield GaugeMetricFamily(
            "latentspeed_open_orders", "Orders open at the venue.", value=len(e.orders.open)
        )
        yield GaugeMetricFamily(
            "latentspeed_trading_enabled", "1 while trading; 0 once halted (kill switch, shutdown).",
            value=1.0 if e.trading_enabled else 0.0,
        )  # fmt: skip
        yield self.t2t.family(
            "latentspeed_tick_to_trade_seconds",
            "Market-data receipt to order written, for orders decided on a book or trade; every order"
            " since start (exact up to 65536, estimated from a uniform reservoir beyond).",
        )
        yield self.round_trip.family(
            "latentspeed_order_round_trip_seconds",
            "Order written to the venue's acknowledgement; every order since start (as tick-to-trade).",
        )


@dataclass
class MetricsServer:
    """The running HTTP server; :meth:`stop` shuts it down and frees the port."""

    server: Any
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # without it the port stays bound (client_python#1068)
        self.thread.join(5)


def serve_metrics(cfg: MetricsConfig, collectors: Iterable[Collector], file: str | None) -> MetricsServer:
    """Start serving ``/metrics``; a port or host that cannot be bound is a :class:`ConfigError`.

    A private registry (not prometheus-client's global one): two runs in one process (tests,
    embedders) never collide, and only our collectors plus the process's CPU, memory and file
    descriptors (``process_*``, read from /proc at scrape time) are exposed.
    """
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    for c in collectors:
        registry.register(c)
    try:
        server, thread = start_http_server(cfg.port, addr=cfg.host, registry=registry)
    except OSError as exc:
        bad_host = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why += ": another process listens there; choose a free port"
        raise ConfigError(
            file,
            "metrics.host" if bad_host else "metrics.port",
            f"cannot serve metrics on {cfg.host}:{cfg.port}: {why}",
        ) from None
    srv = MetricsServer(server, thread, cfg.host, server.server_address[1])
    log.info("serving Prometheus metrics on %s", srv.url)
    return srv
