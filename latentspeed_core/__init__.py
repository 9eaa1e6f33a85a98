"""latentspeed core: plugin system, hot-path types, books, marketstream and the trading engine."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("latentspeed-core")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

#: Decorate hook implementations in plugins with ``@latentspeed_core.hookimpl``.
hookimpl = pluggy.HookimplMarker("latentspeed")

__all__ = ["__version__", "hookimpl"]
