"""Build the optional compiled MARKET_DATA decoder (``latentspeed_mock_exchange._fastproto``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and ``protocol.decode_book`` is the pure-Python decoder (same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_mock_exchange._fastproto",
            ["latentspeed_mock_exchange/_fastproto.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
