"""The plugins this project ships, and how a user installs one: for hints when one is missing.

A command, feed or venue that a missing plugin would provide is otherwise just an unknown
name; with this table the error can say which distribution to install.
"""

from __future__ import annotations

#: Plugin name -> (distribution on the package index, its folder in a source checkout).
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "dydx": ("latentspeed-exchange-dydx", "plugins/exchange_dydx"),
    "bybit": ("latentspeed-exchange-bybit", "plugins/exchange_bybit"),
    "binance": ("latentspeed-exchange-binance", "plugins/exchange_binance"),
    "mock": ("latentspeed-mock-exchange", "plugins/mock_exchange"),
    "examples": ("latentspeed-strategy-examples", "plugins/strategy_examples"),
    "redis": ("latentspeed-sink-redis", "plugins/sink_redis"),
}

#: Subcommands registered by shipped plugins: command -> plugin name.
COMMANDS: dict[str, str] = {"mock-exchange": "mock"}

#: The core's distribution, whose extras (``analysis``, ``bench``, ``test``) add optional tools.
CORE = "latentspeed-core"


def install_hint(*plugins: str) -> str:
    """``pip install DIST ...`` for the named plugins, with the checkout form for developers."""
    known = [DISTRIBUTIONS[p] for p in plugins if p in DISTRIBUTIONS]
    if not known:
        return "install the plugin's distribution with pip"
    dists = " ".join(d for d, _ in known)
    dirs = " ".join(f"-e {folder}" for _, folder in known)
    return f"pip install {dists} (in a source checkout: pip install {dirs})"


def extra_hint(extra: str) -> str:
    """How to add one of the core's extras, e.g. ``analysis``; quoted for the shell's ``[``."""
    return f"pip install '{CORE}[{extra}]' (in a source checkout: pip install -e '.[{extra}]')"
