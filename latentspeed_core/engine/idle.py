"""What the engine does between ticks: spin or sleep, rehearse the hot path, collect garbage.

Two modes (engine config). ``busy_poll`` spins the event loop for ever, and while it spins
:class:`IdleWork` runs the rehearsal (engine/rehearsal.py) every ``warm_interval_us``, and just after
each tick (when the next one is furthest away) the garbage collection the hot path would otherwise
pay for on whichever tick crossed the threshold. Otherwise the loop sleeps, and with
``warm_before_tick_ms`` it wakes that long before the next tick is expected (market data comes at
a cadence: the gap between ticks is learnt as it goes) and spins, doing the same work, until the
tick comes: an adaptive spin-then-sleep that spins at most a quarter of the time.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

#: Objects allocated since the last collection before an idle collection runs (CPython's default
#: generation-0 threshold), and the automatic threshold while idle collections are on: high, so
#: it fires only when the engine is never idle.
IDLE_GC_AFTER = 700
AUTOMATIC_GC_THRESHOLD = 50_000
#: asyncio's timers (uvloop's: libuv) fire at millisecond resolution.
_TIMER_RESOLUTION_NS = 1_000_000


class IdleWork:
    """Called on every spin of an idle loop: a rehearsal step at most every ``interval_us``, and
    just after each tick the garbage collection and slow chores (``after_tick``)."""

    def __init__(
        self,
        rehearse: Callable[[], bool] | None,
        interval_us: float,
        collect: bool,
        activity: Callable[[], int] | None = None,
    ) -> None:
        self.rehearse = rehearse
        #: A count that moves with real ticks (the engine's ``rx_packets``): a tick warms the path
        #: itself, so the next rehearsal waits a whole interval after it (fewer ticks meet one).
        self._activity = activity
        self._seen = -1
        self.interval_ns = int(interval_us * 1000) if rehearse is not None else 1_000_000
        self.collect = collect
        self._next = 0
        self.collections = 0
        self._threshold: tuple[int, int, int] | None = None
        #: [interval ns, function, next due]: slow chores (returning memory to the OS) run just
        #: after a tick, when the next one is furthest away, not on a timer that may meet a tick.
        self._chores: list[list] = []

    def add_chore(self, interval_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` about every ``interval_s``, just after a tick (see :meth:`after_tick`)."""
        n = int(interval_s * 1e9)
        self._chores.append([n, fn, time.perf_counter_ns() + n])

    def after_tick(self) -> None:
        """A tick was just handled, the next is furthest away: collect garbage if due, and run the
        first chore that is due, if any (one per tick)."""
        if self.collect:
            c0, c1, c2 = gc.get_count()
            if c0 >= IDLE_GC_AFTER:
                # The generation the automatic collector would pick (older ones every 10th time).
                _, t1, t2 = self._threshold or gc.get_threshold()
                gc.collect(2 if c2 >= t2 else 1 if c1 >= t1 else 0)
                self.collections += 1
        now = time.perf_counter_ns()
        for chore in self._chores:
            if now >= chore[2]:
                chore[2] = now + chore[0]
                chore[1]()
                return

    def start(self) -> None:
        if self.collect:
            self._threshold = gc.get_threshold()
            gc.set_threshold(AUTOMATIC_GC_THRESHOLD, *self._threshold[1:])

    def stop(self) -> None:
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None

    def __call__(self) -> None:
        now = time.perf_counter_ns()
        if now < self._next:
            return
        if self._activity is not None:
            seen = self._activity()
            if seen != self._seen:
                self._seen = seen
                self._next = now + self.interval_ns
                self.after_tick()
                return
        self.run()

    def run(self) -> None:
        """One step of the rehearsal, now. The next step follows at the next spin until the round
        is done, then after an interval."""
        if self.rehearse is not None and not self.rehearse():
            self._next = 0
            return
        self._next = time.perf_counter_ns() + self.interval_ns


async def busy_poll(work: Callable[[], None]) -> None:
    """Yield to the loop for ever (its poll never blocks), doing ``work`` in between."""
    sleep = asyncio.sleep
    while True:
        await sleep(0)
        work()


async def warm_before_tick(engine, work: IdleWork, lead_ms: float) -> None:
    """Sleep until ``lead_ms`` before the next tick is due, then spin, doing ``work``, until it comes.

    The next tick is due one gap after the last (a running average of the gaps between market-data
    messages, by their receipt stamps). The lead is at most a quarter of the gap, so the engine
    spins at most about a quarter of the time; at cadences under 4 ms (where the lead would be
    under the event loop's 1 ms timer resolution) it does not spin at all, and ticks that close
    together keep the path warm themselves. A tick that comes early is handled at once all the
    same: the loop's poll wakes for it.
    """
    sleep = asyncio.sleep
    clock = time.time_ns
    max_lead = int(lead_ms * 1_000_000)
    last_rx = engine.rx_packets
    last_t = gap = 0
    spun_for = -1
    while True:
        rx = engine.rx_packets
        if rx != last_rx:
            t = engine._md_receipt_ns or clock()
            if last_t and t > last_t:
                g = t - last_t
                gap = g if not gap else (7 * gap + g) >> 3
            last_t, last_rx = t, rx
            work.after_tick()
        lead = min(max_lead, gap >> 2)
        if lead < _TIMER_RESOLUTION_NS:
            await sleep(max_lead / 1e9 or 0.001)  # nothing learnt yet, or too fast to sleep between
            continue
        now = clock()
        due = last_t + gap
        if now < due - lead:
            await sleep((due - lead - now) / 1e9)
        elif spun_for != last_rx:
            spun_for = last_rx
            work.run()
            until = due + lead
            while engine.rx_packets == last_rx and clock() < until:
                await sleep(0)
                work()
        else:  # the tick is late: look again in a while
            await sleep(lead / 1e9)
