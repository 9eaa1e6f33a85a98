"""A short run of ``benchmarks/soak.py``: three real processes, the exchange killed and restarted.

Checks the result line's shape, that restarts happened and that the engine and the
marketstream came through them (orders traded, none left unknown that a live exchange
could tell about). No timing or RSS assertions: those figures belong to the full run
(docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["minutes", "orders", "fills", "orders_unknown_at_end", "rss_slope_kb_per_min", "restarts"]


def test_soak_smoke_survives_exchange_restarts(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--minutes",
            "0.4",
            "--restart-every",
            "7",
            "--sample-every",
            "1",
            "--keep",
            str(tmp_path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert list(result) == KEYS
    assert set(result["rss_slope_kb_per_min"]) == {"engine", "marketstream", "mock"}
    assert result["restarts"] >= 2
    assert result["orders"] > 0 and result["fills"] >= 0
    assert result["orders_unknown_at_end"] == 0
    detail = json.loads(lines[-2].removeprefix("detail: "))
    assert detail["failure"] is None
    assert detail["engine_reconnects"] >= 1  # it came back to a restarted exchange by itself
    # every exchange fill reached the engine, except on orders that died with a killed exchange
    assert detail["exchange_fills_missed_otherwise"] == 0
    assert "exchange killed (-9) and restarted" in proc.stderr
