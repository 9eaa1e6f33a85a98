"""The trading engine: strategies, risk checks, orders, positions (docs/engine.md).

Third-party strategies need only :mod:`latentspeed_core.engine.strategy`; risk-check plugins
:mod:`latentspeed_core.engine.risk`.
"""
