"""Makes the dYdX test kit (``dydx_testkit``) and the chain emulator importable (pytest's importlib mode
cannot import conftest), and hands the kit to tests as the ``kit`` fixture."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def kit():
    """The dYdX test kit module: ``kit.IndexerServer``, ``kit.RefBook``, ``kit.frame`` ..."""
    import dydx_testkit

    return dydx_testkit


# benchmarks/order_entry.py imports this module as the dYdX kit (``import conftest as kit``).
from dydx_testkit import *  # noqa: E402, F403
