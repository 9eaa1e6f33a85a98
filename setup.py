"""Build the optional compiled order book (``latentspeed_core._book``).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install
still succeeds and ``latentspeed_core.book`` falls back to its pure-Python ``L2Book``.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "latentspeed_core._book",
            ["latentspeed_core/_book.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
