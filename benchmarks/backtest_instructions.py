"""Instructions per backtest event, counted by callgrind: the figure to compare changes by (issue 13).

    python benchmarks/backtest_instructions.py [--repeat 20] [--capture FILE] [--keep DIR]

Wall and CPU times on this VM move by ±20 % over hours; instruction counts do not. This builds the
benchmark's capture (``benchmarks/backtest.py``, ``--repeat`` Binance sessions), then runs
``valgrind --tool=callgrind`` twice on a child that backtests it in memory once and twice: the
difference is one warm backtest (imports, set-up and the first, cold run cancel out). Last line:
JSON ``{"events": N, "instructions_per_event": X, "fill_digest": "..."}``, and
``loop_instructions_per_event``: the part in the compiled merge's ``frames()`` loop, what the
benchmark's ``events_per_s`` times (the rest is the set-up and the report of a run; absent without
the compiled merge or ``callgrind_annotate``).

Needs valgrind (Debian package). Takes about a minute per 10 repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(capture: str, runs: int, out: str) -> None:
    import backtest as B

    from latentspeed_core.capture import read_capture
    from latentspeed_core.plugins import load_registry

    registry = load_registry()
    data = B.engine_config(B.capture_feeds(capture))
    records = list(read_capture(capture))
    with B.InMemory(capture, records):
        res = None
        for _ in range(runs):
            res, _cpu = B.run_backtest_once(data, registry, capture)
    Path(out).write_text(json.dumps({"events": res.events, "fill_digest": res.fill_digest, "fills": len(res.fills)}))


def collected(capture: str, runs: int, tmp: Path) -> tuple[int, dict]:
    out = tmp / f"out{runs}.json"
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.{runs}",
        sys.executable, __file__, "--child", capture, str(runs), str(out),
    ]  # fmt: skip
    # numpy's OpenBLAS worker threads otherwise show up in some runs (0 to 4,200 per event).
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # str hashes, so dicts' probe sequences, differ per process: ±1 % of the count run to run.
    env.setdefault("PYTHONHASHSEED", "0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not m:
        raise SystemExit(f"callgrind run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(m.group(1)), json.loads(out.read_text())


def inclusive(path: Path, function: str) -> int | None:
    """Instructions spent in ``function`` and what it called (callgrind_annotate), or None."""
    try:
        out = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"^\s*([\d,]+)\s.*:" + re.escape(function) + r"(?:'\d+)? ", out, re.M)
    return int(m.group(1).replace(",", "")) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="repeats of the Binance session in the capture")
    ap.add_argument("--capture", metavar="FILE", help="count this capture instead of building one")
    ap.add_argument("--keep", metavar="DIR", help="keep the two callgrind files here (for callgrind_annotate)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    import backtest as B

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        capture = args.capture or str(tmp / "capture.jsonl.gz")
        if not args.capture:
            B.build_capture(Path(capture), args.repeat, 100.0)
        one, r1 = collected(capture, 1, tmp)
        two, r2 = collected(capture, 2, tmp)
        loops = [inclusive(tmp / f"cg.{n}", "merge_frames") for n in (1, 2)]
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("cg.*"):
                shutil.copy(f, keep / f.name)
    if r1 != r2:
        raise SystemExit(f"the two runs differ: {r1} vs {r2}")
    per = (two - one) / r2["events"]
    print(f"one warm backtest: {two - one:,} instructions, {r2['events']:,} events", file=sys.stderr)
    extra = {}
    if None not in loops:
        extra["loop_instructions_per_event"] = round((loops[1] - loops[0]) / r2["events"], 1)
    print(json.dumps({**r2, "instructions_per_event": round(per, 1), **extra}))


if __name__ == "__main__":
    main()
