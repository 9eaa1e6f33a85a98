"""Hook implementations of the ``examples`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .market_maker import MarketMaker, MarketMakerParams
from .ofi_taker import OfiTaker, OfiTakerParams


@hookimpl
def register_strategies(register):
    register(
        Component(
            "market_maker",
            MarketMakerParams,
            MarketMaker,
            "quotes both sides around mid with inventory skew; requotes on moves",
        )
    )
    register(
        Component(
            "ofi_taker",
            OfiTakerParams,
            OfiTaker,
            "takes liquidity when order-flow imbalance (ofi_rolling, imbalance_lvl1) is strong",
        )
    )
