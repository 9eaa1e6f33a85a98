"""Hook implementations of the ``mock`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .config import MockFeedConfig, MockVenueConfig, PaperVenueConfig


def _feed(config, name=None):
    from .feed import MockFeed

    return MockFeed(config, name)


def _venue(config):
    from .venue import MockVenue

    return MockVenue(config)


async def _embedded_exchange(host: str, port: int, symbols: list[str]):
    """Start a mock exchange in this process (``latentspeed run``); OSError if the port is taken."""
    from .config import MockExchangeConfig
    from .server import MockExchange

    return await MockExchange(MockExchangeConfig(host=host, port=port, symbols=symbols, log_orders=False)).start()


def _paper(config):
    from .paper import PaperVenue

    return PaperVenue(config)


@hookimpl
def register_feeds(register):
    register(Component("mock", MockFeedConfig, _feed, "books and trades from a running mock exchange"))


@hookimpl
def register_venues(register):
    register(Component("mock", MockVenueConfig, _venue, "order entry on the mock exchange (binary TCP)",
                       extras={"embedded_exchange": _embedded_exchange}))  # fmt: skip
    register(Component("paper", PaperVenueConfig, _paper,
                       "simulated fills against the engine's own market data (paper trading, backtests)"))  # fmt: skip


@hookimpl
def register_commands(register):
    from .command import COMMAND

    register(COMMAND)
