"""benchmarks/vs_cryptofeed.py runs end to end (a few passes) and keeps its last-line JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "vs_cryptofeed.py"


def test_benchmark_contract():
    pytest.importorskip("cryptofeed", reason="benchmark extra not installed: pip install -e '.[bench]'")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--passes", "2", "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"latentspeed", "cryptofeed", "ratio", "depth_frames", "books_equal"}
    for side in ("latentspeed", "cryptofeed"):
        assert set(result[side]) == {"frames_per_s", "p50_us", "p99_us"} and result[side]["frames_per_s"] > 0
    assert result["books_equal"] is True and result["depth_frames"] == 88
    assert result["ratio"] == pytest.approx(
        result["latentspeed"]["frames_per_s"] / result["cryptofeed"]["frames_per_s"], rel=1e-2
    )
