"""A short run of benchmarks/fuzz.py (issue 18): a few thousand fixed-seed inputs per target.

Why in the suite: the million-input runs are benchmarks (docs/reliability.md), but a parser change
that lets one malformed frame crash a feed, hang a decoder or publish an impossible book should fail
here, on every run. The seed is fixed, so a failure is reproducible input by input
(``--first I --inputs 1``) and the failing inputs are saved for a regression test.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "benchmarks" / "fuzz.py"
TARGETS = ("mock-server", "mock-client", "binance", "bybit", "dydx")
INPUTS = 2500
SUMMARY_KEYS = {"target", "inputs", "inputs_per_s", "crashes", "hangs", "invariant_violations"}


def _fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("latentspeed_fuzz", FUZZ)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory) -> SimpleNamespace:
    """One ``--target all`` run (one process: the imports and the mock exchange start once)."""
    out = tmp_path_factory.mktemp("fuzz")
    cmd = [sys.executable, str(FUZZ), "--target", "all", "--inputs", str(INPUTS),
           "--save-dir", str(out / "failures"), "--json-out", str(out / "fuzz.json")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    doc = json.loads((out / "fuzz.json").read_text())
    return SimpleNamespace(lines=lines, doc=doc, stderr=proc.stderr, save_dir=out / "failures")


def test_one_summary_line_per_target_then_the_total(fuzz_run):
    assert [ln["target"] for ln in fuzz_run.lines] == [*TARGETS, "all"]
    for ln in fuzz_run.lines:
        assert set(ln) == SUMMARY_KEYS
    assert fuzz_run.lines[-1]["inputs"] == INPUTS * len(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
def test_no_crash_hang_or_invariant_violation(fuzz_run, target):
    line = next(ln for ln in fuzz_run.lines if ln["target"] == target)
    res = fuzz_run.doc["targets"][target]
    assert line["inputs"] == INPUTS
    assert line["inputs_per_s"] > 0
    found = "\n".join(f"{n} x {sig}: {res['examples'].get(sig, '')}" for sig, n in res["signatures"].items())
    assert (line["crashes"], line["hangs"], line["invariant_violations"]) == (0, 0, 0), (
        f"{target}: failing inputs saved in {fuzz_run.save_dir / target}\n{found}"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_the_inputs_reach_the_parsers_and_get_checked(fuzz_run, target):
    """Guards against a fuzzer that silently tests nothing: books and trades are checked, bad frames refused."""
    d = fuzz_run.doc["targets"][target]["details"]
    assert d.get("generator_errors", 0) == 0, fuzz_run.stderr[-3000:]
    assert d["books_checked"] > INPUTS // 4
    assert d["trades_checked"] > 0
    if target != "mock-server":
        assert sum(n for n, _example in d["skipped_inputs_by_reason"].values()) > INPUTS // 10


def test_the_checker_flags_impossible_books_and_trades():
    fz = _fuzz_module()
    c = fz.Checker()
    c.levels("ok", [[2.0, 1.0], [1.0, 1.0]], [[3.0, 1.0]])
    assert c.violations == []
    for bids, asks in (
        ([[math.inf, 1.0]], []),
        ([[2.0, 1.0], [-5.0, 1.0]], []),
        ([], [[0.0, 1.0]]),
        ([[2.0, math.inf]], []),
        ([[2.0, math.nan]], []),
        ([[1.0, 1.0], [2.0, 1.0]], []),  # bids not best first
        ([[3.0, 1.0]], [[3.0, 1.0]]),  # locked
    ):
        c.clear()
        c.levels("bad", bids, asks)
        assert c.violations, (bids, asks)
    for price, amount in ((math.nan, 1.0), (1.0, -2.0), (0.0, 1.0), (math.inf, 1.0)):
        c.clear()
        c.trade("bad", SimpleNamespace(price=price, amount=amount, side="buy"))
        assert c.violations, (price, amount)


def test_a_zero_length_market_data_header_neither_hangs_nor_crashes_the_client():
    """Issue 18, defect 1, through the fuzzer's own harness (the CPU-time watchdog must not fire)."""
    fz = _fuzz_module()
    target = fz.make_target("mock-client", fz.DEFAULT_SEED)
    frame = struct.pack("<HHIQ", 0, 1, 1, 0)
    for steps in ([("config", 0), ("read", frame)], [("config", 1), ("read", frame * 3 + bytes(40))]):
        out = fz.execute(target, steps, 2.0)
        assert out.kind == "ok", out
