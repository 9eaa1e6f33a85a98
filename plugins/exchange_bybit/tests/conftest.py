"""Makes the Bybit test kit importable as ``bybit_testkit`` (pytest's importlib mode cannot import conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
