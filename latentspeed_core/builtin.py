"""The core's own plugin: standard features, standard risk checks and built-in commands.

Registered through the same hooks as any installed plugin, under the name ``core``.
"""

from __future__ import annotations

from . import hookimpl


@hookimpl
def register_commands(register):
    from .commands import (
        analyze,
        backtest,
        collect,
        config_cmd,
        engine,
        export,
        marketstream,
        plugins_cmd,
        record,
        run,
        tap,
        verify,
    )

    for module in (analyze, backtest, collect, config_cmd, engine, export, marketstream, plugins_cmd, record, run, tap, verify):
        register(module.COMMAND)


@hookimpl
def register_features(register):
    from .marketstream.features import register_standard

    register_standard(register)


@hookimpl
def register_risk_checks(register):
    from .engine.risk import register_standard

    register_standard(register)
