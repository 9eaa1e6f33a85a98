"""Hook implementations of the ``dydx`` plugin (hooks only; the work lives in sibling modules)."""

from latentspeed_core import hookimpl
from latentspeed_core.components import Component


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
