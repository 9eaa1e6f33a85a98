"""Hook implementations: this module is the entry point (``momentum = latentspeed_example_momentum.plugin``)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .strategy import Momentum, MomentumParams


@hookimpl
def register_strategies(register):
    # name (used in the engine config's `strategies[].name`), params model, factory(params) -> Strategy
    register(Component("momentum", MomentumParams, Momentum, "IOC taker following short-horizon mid moves"))
