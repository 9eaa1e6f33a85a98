#!/usr/bin/env python3
"""A script form of ``latentspeed analyze``, for hosts where only scripts/ was copied.

    python3 scripts/analyze_results.py ./collected_data/ [--json-out report.json]

RUN_DIR may be a run directory or a folder holding copied run directories (the newest is used).
"""

import sys

try:
    from latentspeed_core.cli import main
except ImportError:
    sys.exit(
        "analyze_results.py: latentspeed is not installed here"
        " (pip install 'latentspeed-core[analysis]', or in a checkout: python3 dev.py setup)"
    )

if __name__ == "__main__":
    sys.exit(main(["analyze", *sys.argv[1:]]))
