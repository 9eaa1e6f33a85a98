"""Hook implementations of the ``dydx`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

if TYPE_CHECKING:
    from latentspeed_core.venue import Venue

    from .config import DydxVenueConfig


@hookimpl
def register_feeds(register):
    from .config import DydxConfig
    from .feed import DydxFeed

    register(
        Component(
            name="dydx",
            config_model=DydxConfig,
            factory=DydxFeed,
            description="dYdX v4 indexer: v4_orderbook + v4_trades per market",
        )
    )


def _make_venue(config: DydxVenueConfig) -> Venue:
    # Imported on use: gRPC, the chain's protobufs and secp256k1 are the optional ``trade`` extra,
    # which the market-data feed never needs (the config model says how to install it when missing).
    from .execution import DydxVenue

    return DydxVenue(config)


@hookimpl
def register_venues(register):
    from .config import DydxVenueConfig

    register(
        Component(
            name="dydx",
            config_model=DydxVenueConfig,
            factory=_make_venue,
            description="dYdX v4 order entry: signed transactions to a validator (gRPC), fills from the "
            "indexer (v4_subaccounts); testnet by default; needs the trade extra",
        )
    )
