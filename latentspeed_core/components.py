"""What plugins register: named factories with their pydantic config models."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class Component:
    """A named, configurable factory (a feed, venue, strategy, risk check, feature or sink)."""

    name: str
    config_model: type[BaseModel]
    factory: Callable[..., Any]
    description: str = ""
    #: Only meaningful for risk checks and features: lower runs first.
    priority: int = 100
    #: Filled in by the registry: the plugin that registered it.
    plugin: str = field(default="", compare=False)
    #: Optional capabilities by name, e.g. a venue's ``embedded_exchange(host, port, symbols)``
    #: coroutine that starts its exchange in-process (``latentspeed run``), so the core never
    #: imports a plugin to use it.
    extras: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Command:
    """A ``latentspeed`` subcommand.

    ``configure`` adds arguments to the subparser; ``run`` gets the parsed
    namespace (with ``registry`` set) and returns the exit code.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    plugin: str = field(default="", compare=False)
