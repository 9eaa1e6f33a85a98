"""Build the optional compiled part: the feed's usual frames routed in C
(``latentspeed_exchange_binance._route``, ``BinanceFeed.frame_handler``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and ``BinanceFeed.on_frame`` takes every frame (same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_exchange_binance._route",
            ["latentspeed_exchange_binance/_route.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
