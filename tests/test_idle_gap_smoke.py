"""A short run of ``benchmarks/idle_gap.py``: it patches the engine's objects to stamp the stages, so a
change to those objects (slots, a compiled path) breaks it silently unless something runs it.

Checks the last line's shape and that every stage was stamped in order (each one non-negative, the
stages summing to about the total). No timing assertions: the figures belong to docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["decode", "book+features+engine", "strategy", "risk+order objects", "encode", "write", "total"]


def test_idle_gap_stamps_every_stage_of_a_tick():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "idle_gap.py"), "--gaps", "0,1", "--ticks", "20"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(result) == ["0", "1"]
    for gap in result.values():
        assert sorted(gap) == ["idle", "rehearsing"]
        for stages in gap.values():
            assert list(stages) == STAGES
            assert all(v >= 0 for v in stages.values()), stages
            parts = sum(v for k, v in stages.items() if k != "total")
            assert stages["total"] > 0 and abs(parts - stages["total"]) <= 0.5 * stages["total"], stages
