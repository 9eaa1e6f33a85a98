"""Fixtures: a mock exchange on a free port in a background thread, and raw clients
(mockx_raw_client.py, an independent implementation of the wire protocol).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest
from latentspeed_mock_exchange.config import MockExchangeConfig
from latentspeed_mock_exchange.server import MockExchange

# pytest runs with --import-mode=importlib: make the uniquely named helper importable.
sys.path.insert(0, str(Path(__file__).parent))
from mockx_raw_client import RawClient  # noqa: E402


class ExchangeThread:
    """A MockExchange on its own event loop thread; ``call(fn)`` runs ``fn`` on that loop and waits."""

    def __init__(self, **cfg) -> None:
        cfg.setdefault("port", 0)
        cfg.setdefault("seed", 7)
        self.ex = MockExchange(MockExchangeConfig(**cfg))
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.ex.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name="mock-exchange", daemon=True)
        self.thread.start()
        assert started.wait(10), "exchange did not start"
        self.port = self.ex.port

    def call(self, fn, *args):
        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.ex.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def exchange():
    """Factory: ``exchange(**config)`` starts one; all are stopped at the end of the test.

    Ticks default to once a minute so books only change when a test calls ``tick()``.
    """
    started: list[ExchangeThread] = []

    def make(**cfg) -> ExchangeThread:
        cfg.setdefault("tick_rate", 60_000)
        e = ExchangeThread(**cfg)
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def client():
    made: list[RawClient] = []

    def make(port: int) -> RawClient:
        c = RawClient(port)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
