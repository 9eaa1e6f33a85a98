"""Build the optional compiled part: the usual orderbook delta routed in C
(``latentspeed_exchange_bybit._route``, ``BybitFeed.frame_handler``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and ``BybitFeed.on_frame`` takes every frame (same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_exchange_bybit._route",
            ["latentspeed_exchange_bybit/_route.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
