"""Let the tests run from a source checkout where the package is not installed."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("latentspeed_example_momentum") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
