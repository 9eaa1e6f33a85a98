"""Build the optional compiled hot-path modules: the order book (``latentspeed_core._book``), the
standard feature updaters (``latentspeed_core._features``), the backtest's merge of capture
sources (``latentspeed_core._merge``), a capture's reading on a thread of its own
(``latentspeed_core._capread``, with zlib) and the engine's market-data entry points
(``latentspeed_core._engine``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and ``book.py`` / ``marketstream/features.py`` use their pure-Python implementations.
``-ffp-contract=off``: no fused multiply-add, so float results are bit-identical to Python's.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_core._book",
            ["latentspeed_core/_book.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
        Extension(
            "latentspeed_core._features",
            ["latentspeed_core/_features.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
        Extension(
            "latentspeed_core._merge",
            ["latentspeed_core/_merge.c"],
            depends=["latentspeed_core/_pyint.h"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "latentspeed_core._capread",
            ["latentspeed_core/_capread.c"],
            extra_compile_args=["-O3", "-pthread"],
            extra_link_args=["-pthread"],
            libraries=["z"],
            optional=True,
        ),
        Extension(
            "latentspeed_core._engine",
            ["latentspeed_core/_engine.c"],
            depends=["latentspeed_core/_pyint.h"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
    ]
)
