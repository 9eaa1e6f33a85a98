"""Makes the Binance test kit importable as ``binance_testkit`` (pytest's importlib mode cannot import conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
