"""Hook implementations of the ``bybit`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .config import BybitConfig, BybitVenueConfig


def _make_feed(config: BybitConfig, name: str | None = None):
    from .feed import BybitFeed  # imported on use: plugin listing stays cheap

    return BybitFeed(config, name)


@hookimpl
def register_feeds(register) -> None:
    register(
        Component(
            name="bybit",
            config_model=BybitConfig,
            factory=_make_feed,
            description="Bybit v5 public books (orderbook.{depth}) and trades (publicTrade), spot/linear/inverse",
        )
    )


def _make_venue(config: BybitVenueConfig):
    from .execution import BybitVenue  # imported on use, like the feed

    return BybitVenue(config)


@hookimpl
def register_venues(register) -> None:
    register(
        Component(
            name="bybit",
            config_model=BybitVenueConfig,
            factory=_make_venue,
            description="Bybit v5 order entry (WebSocket /v5/trade) with own fills from the private stream; testnet by default",
        )
    )
