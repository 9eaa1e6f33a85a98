"""Running a marketstream: feeds → pipeline → publisher, with stats, recording and shutdown.

Used by ``latentspeed marketstream`` (publishes) and ``latentspeed record`` (records and
does not publish). Everything runs on one event loop (uvloop when installed); the hot
path is synchronous inside each feed's ``deliver_frame``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time

from ..capture import CaptureError, Recorder, feed_config_record
from .config import MarketstreamSetup, build_feeds, build_sinks
from .features import build_calculators
from .pipeline import Pipeline
from .publisher import Publisher

log = logging.getLogger("latentspeed.marketstream")


def stats_line(feed, pipeline: Pipeline | None = None) -> str:
    s = feed.stats
    line = (
        f"STATS feed={feed.name} messages={s.messages} books={s.books} trades={s.trades} errors={s.errors}"
        f" resyncs={s.resyncs} reconnects={s.reconnects} publish_drops={s.publish_drops}"
    )
    if pipeline is not None:
        line += f" crossed={pipeline.crossed.get(feed.name, 0)}"
    return line


def _nothing(topic: str, msg: dict) -> None:
    return None


async def run_marketstream(
    setup: MarketstreamSetup,
    registry,
    *,
    publish: bool = True,
    record: str | None = None,
    wait_subscribers: int = 0,
    duration: float | None = None,
) -> int:
    """Run until SIGINT/SIGTERM, ``duration`` seconds, or every feed has finished (replays)."""
    cfg = setup.config
    z = cfg.zmq
    feeds = build_feeds(setup.feeds, setup.feed_names, registry)
    calculators = build_calculators(registry, z.window_size, z.depth_levels, names=cfg.features)
    sinks = build_sinks(setup.sinks, registry) if publish else []
    publisher = (
        Publisher(
            z.host, z.port, z.sndhwm, io_cpus=z.io_cpus, slow_subscriber=z.slow_subscriber, sinks=sinks
        )
        if publish
        else None
    )
    pipeline = Pipeline(
        z.window_size,
        z.depth_levels,
        calculators,
        publisher.publish_book if publisher else _nothing,
        publisher.publish_trade if publisher else _nothing,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task] = []
    no_data: str | None = None
    recorder = None
    metrics = None
    try:
        if cfg.metrics is not None:
            from ..metrics import MarketstreamCollector, serve_metrics

            metrics = serve_metrics(cfg.metrics, [MarketstreamCollector(feeds, publisher)], setup.file)
        if record:
            recorder = Recorder(record, feeds=setup.feed_names, feed_configs={
                n: feed_config_record(c) for n, c in zip(setup.feed_names, setup.feeds, strict=True)})  # fmt: skip
            for feed in feeds:
                feed.recorder = recorder
        for sink in sinks:
            sink.start()
            log.info("sink %s: every published message also goes to %s", sink.name, sink.describe())
        if publisher is not None:
            log.info(
                "publishing trades on tcp://%s:%d, books on tcp://%s:%d", z.host, z.port, z.host, z.port + 1
            )
            if wait_subscribers:
                log.info("waiting for %d subscriber(s) on each port", wait_subscribers)
                waiter = asyncio.ensure_future(publisher.wait_subscribers(wait_subscribers))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        if record:
            log.info("recording every feed input to %s", record)
        if not stop.is_set():
            # Start-up objects (plugins, configs, pydantic models) move out of the collector's
            # reach: later collections only walk what the hot path allocates (shorter pauses).
            gc.collect()
            gc.freeze()
            for feed in feeds:
                log.info(
                    "starting feed %s (%s)%s",
                    feed.name,
                    feed.exchange,
                    f" replaying {feed.config.replay}" if feed.config.replay else "",
                )
                tasks.append(asyncio.create_task(_run_feed(feed, pipeline), name=f"feed:{feed.name}"))
            no_data = await _supervise(
                tasks, stop, feeds, pipeline, cfg.stats_interval, duration, publisher, cfg.startup_timeout
            )
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for feed in feeds:
            log.info(stats_line(feed, pipeline))
        if recorder is not None:
            recorder.close()
            log.info("capture %s: %d records", record, recorder.records)
        if publisher is not None:
            log.info(
                "PUBLISHED books=%d trades=%d book_drops=%d trade_drops=%d",
                publisher.books_sent,
                publisher.trades_sent,
                publisher.book_drops,
                publisher.trade_drops,
            )
            publisher.close()
            for sink in publisher.sinks:
                sink.close()
                log.info(sink.stats_line())
        if metrics is not None:
            metrics.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("marketstream stopped")
    if no_data:
        raise NoMarketData(no_data)
    return 0


class NoMarketData(RuntimeError):
    """No feed delivered anything (within ``startup_timeout``, or in the whole run)."""


def _no_data(feeds, why: str) -> str | None:
    if any(f.stats.messages for f in feeds):
        return None
    where = ", ".join(f"{f.name} ({f.config.endpoint()})" for f in feeds)
    return f"no market data from {where} {why}"


async def _run_feed(feed, pipeline: Pipeline) -> None:
    try:
        await feed.run(pipeline)
    except asyncio.CancelledError:
        raise
    except CaptureError as exc:
        feed.stats.errors += 1
        log.error("%s: cannot replay: %s", feed.name, exc)
    except Exception:  # a feed bug stops that feed only; the others keep publishing
        feed.stats.errors += 1
        log.exception("%s: feed stopped by an unexpected error", feed.name)


async def _supervise(tasks, stop, feeds, pipeline, interval, duration, publisher, startup_timeout) -> str | None:
    """Print stats every ``interval`` s until stopped, timed out, or all feeds are done.

    Returns why the run failed when no feed ever delivered a message (else None)."""
    start = time.monotonic()
    next_stats = start + interval
    check_at: float | None = start + startup_timeout
    all_done = asyncio.ensure_future(asyncio.wait(tasks))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while True:
            now = time.monotonic()
            wake = next_stats if check_at is None else min(next_stats, check_at)
            if duration is not None:
                wake = min(wake, start + duration)
            done, _ = await asyncio.wait(
                {all_done, stopper}, timeout=max(0.0, wake - now), return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                return None if stopper in done else _no_data(feeds, "before every feed ended")
            now = time.monotonic()
            if check_at is not None and now >= check_at:
                why = _no_data(feeds, f"within {startup_timeout:g}s (startup_timeout)")
                if why:
                    return why
                check_at = None
            if duration is not None and now >= start + duration:
                return _no_data(feeds, f"during the run ({duration:g}s)")
            if now >= next_stats:
                next_stats = now + interval
                if publisher is not None:
                    publisher.poll_subscriptions()  # keep XPUB's notification queue drained
                for feed in feeds:
                    log.info(stats_line(feed, pipeline))
                for sink in publisher.sinks if publisher is not None else ():
                    log.info(sink.stats_line())
    finally:
        all_done.cancel()
        stopper.cancel()
