"""Hook implementations of the ``binance`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .config import BinanceConfig, BinanceVenueConfig


def _make_feed(config: BinanceConfig, name: str | None = None):
    from .feed import BinanceFeed  # imported on use: plugin listing stays cheap

    return BinanceFeed(config, name)


@hookimpl
def register_feeds(register) -> None:
    register(
        Component(
            name="binance",
            config_model=BinanceConfig,
            factory=_make_feed,
            description="Binance spot and USD-M futures books (diff depth + REST snapshot) and trades",
        )
    )


def _make_venue(config: BinanceVenueConfig):
    from .execution import BinanceVenue  # imported on use, like the feed

    return BinanceVenue(config)


@hookimpl
def register_venues(register) -> None:
    register(
        Component(
            name="binance",
            config_model=BinanceVenueConfig,
            factory=_make_venue,
            description="Binance spot and USD-M order entry (WebSocket API, signed; testnet by default)",
        )
    )
