"""Process set-up shared by the long-running commands: the event loop and CPU pinning."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("latentspeed.runtime")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh loop: uvloop when installed (less per-callback overhead), else asyncio."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - Windows
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


async def spin() -> None:
    """Yield to the loop forever, so that its poll never blocks (``busy_poll`` options).

    The process then never sleeps in ``epoll_wait``: a message is seen without a wake-up, caches
    stay warm, and a peer's write to us costs it no cross-CPU wake-up (~7 µs per loopback send on
    the VM measured in docs/performance.md). It costs one whole CPU: pin the process.
    """
    while True:
        await asyncio.sleep(0)


def parse_cpus(text: str) -> list[int]:
    """``6,7`` or ``4-7`` or ``0,2-3`` -> sorted CPU numbers; ``ValueError`` on anything else."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return sorted(out)


def set_cpu_affinity(cpus: list[int] | None) -> None:
    """Pin this process (Linux ``sched_setaffinity``); elsewhere a logged no-op."""
    if not cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        log.warning("cpu affinity not supported on this platform; ignoring %s", cpus)
        return
    os.sched_setaffinity(0, set(cpus))
    log.info("pinned to CPUs %s", sorted(os.sched_getaffinity(0)))
