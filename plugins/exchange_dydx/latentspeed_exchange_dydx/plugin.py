"""Hook implementations of the ``dydx`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .config import DydxConfig, DydxVenueConfig


def _make_feed(config: DydxConfig, name: str | None = None):
    from .feed import DydxFeed  # imported on use: plugin listing stays cheap

    return DydxFeed(config, name)


@hookimpl
def register_feeds(register) -> None:
    register(
        Component(
            name="dydx",
            config_model=DydxConfig,
            factory=_make_feed,
            description="dYdX v4 indexer: v4_orderbook + v4_trades per market",
        )
    )


def _make_venue(config: DydxVenueConfig):
    # Imported on use, like the feed; here it matters more: gRPC, the chain's protobufs and secp256k1 are
    # the optional ``trade`` extra, which the market-data feed never needs (the config model says how to
    # install it when missing).
    from .execution import DydxVenue

    return DydxVenue(config)


@hookimpl
def register_venues(register) -> None:
    register(
        Component(
            name="dydx",
            config_model=DydxVenueConfig,
            factory=_make_venue,
            description="dYdX v4 order entry: signed transactions to a validator (gRPC), fills from the "
            "indexer (v4_subaccounts); testnet by default; needs the trade extra",
        )
    )
