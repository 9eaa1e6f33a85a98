"""Hook specifications: the whole contract between the core and its plugins.

Each ``register_*`` hook receives a ``register`` callable and calls it once per
component it provides (a :class:`~latentspeed_core.components.Component`, or a
:class:`~latentspeed_core.components.Command` for ``register_commands``). The
core owns the registry and refuses two components of the same kind and name.
Hooks run once at start-up, never on the hot path; they build factories, and the
objects those factories return do the (async) work.

A plugin is a module with functions decorated by ``latentspeed_core.hookimpl``,
exposed through one entry point in group ``latentspeed``; the entry-point name is
the plugin name users type (``--plugins dydx,mock``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .components import Command, Component
    from .plugins import Registry

hookspec = pluggy.HookspecMarker("latentspeed")


@hookspec
def register_feeds(register: Callable[[Component], None]) -> None:
    """Register market-data sources. Factory: ``factory(config) -> Feed``.

    The config model must subclass :class:`latentspeed_core.config.FeedConfig`.
    """


@hookspec
def register_venues(register: Callable[[Component], None]) -> None:
    """Register execution venues. Factory: ``factory(config) -> Venue``."""


@hookspec
def register_features(register: Callable[[Component], None]) -> None:
    """Register feature calculators for marketstream book/trade messages.

    Factory: ``factory(config, window_size, depth_levels) -> FeatureCalculator``.
    """


@hookspec
def register_strategies(register: Callable[[Component], None]) -> None:
    """Register trading strategies. Factory: ``factory(params) -> Strategy``."""


@hookspec
def register_risk_checks(register: Callable[[Component], None]) -> None:
    """Register pre-trade risk checks. Factory: ``factory(config) -> RiskCheck``.

    Checks run in ascending ``Component.priority``, never in registration order.
    """


@hookspec
def register_sinks(register: Callable[[Component], None]) -> None:
    """Register marketstream sinks. Factory: ``factory(config) -> Sink``.

    The config model must subclass :class:`latentspeed_core.sink.SinkConfig`; the sink gets
    every published message off the hot path (:class:`latentspeed_core.sink.Sink`).
    """


@hookspec
def register_commands(register: Callable[[Command], None]) -> None:
    """Register ``latentspeed`` subcommands; they appear in ``latentspeed --help``."""


@hookspec(historic=True)
def latentspeed_configure(registry: Registry) -> None:
    """Called once after every plugin has registered its components.

    Historic: a plugin registered late still receives the call.
    """
