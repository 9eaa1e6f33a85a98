"""Build the optional compiled parts: the MARKET_DATA decoder (``latentspeed_mock_exchange._fastproto``)
and the paper venue's per-message work (``latentspeed_mock_exchange._paper``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and the pure-Python code runs instead (same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_mock_exchange._fastproto",
            ["latentspeed_mock_exchange/_fastproto.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "latentspeed_mock_exchange._paper",
            ["latentspeed_mock_exchange/_paper.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,
        ),
    ]
)
