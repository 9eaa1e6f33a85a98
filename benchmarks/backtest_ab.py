"""Backtest speed of two revisions, measured in alternating processes (issue 13).

    python benchmarks/backtest_ab.py REV_A REV_B [--rounds 4] [--runs 3] [--repeat 400] [--capture FILE]

This VM's speed moves by up to 2x over minutes, so two figures taken minutes apart rank nothing.
Here each revision is checked out in a temporary git worktree with its compiled modules built in
place, and ``--rounds`` times a process of A then one of B (each revision's code first on the import
path) reads the same capture into memory and times ``--runs`` warm backtests of it, as
``benchmarks/backtest.py`` does. Every run's events/s is printed; the last line is JSON
``{"a": {"rev", "mean", "median", "runs"}, "b": {...}, "b_over_a": X, "same_fills": bool}``.
``same_fills`` compares the fill digests (a change meant only to be faster must keep them). Every
process has ``PYTHONHASHSEED=0`` unless the environment sets one.

Callgrind's instruction counts (``backtest_instructions.py``) do not see cache misses or divisions;
this does, through the noise, which only many alternating runs average out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(tree: str, capture: str, runs: int) -> None:
    """Time `runs` in-memory backtests with the code of `tree` (first on the import path)."""
    import gc

    import backtest as B

    import latentspeed_core

    if not latentspeed_core.__file__.startswith(tree):
        raise SystemExit(f"imported {latentspeed_core.__file__}, not the tree {tree}")
    from latentspeed_core.capture import read_capture
    from latentspeed_core.plugins import load_registry

    registry = load_registry()
    data = B.engine_config(B.capture_feeds(capture))
    records = list(read_capture(capture))
    gc.collect()
    gc.freeze()
    rates, digest = [], ""
    with B.InMemory(capture, records):
        for _ in range(runs):
            res, _cpu = B.run_backtest_once(data, registry, capture)
            rates.append(res.events_per_s)
            digest = res.fill_digest
    print(json.dumps({"rates": rates, "digest": digest}))


def import_path(tree: Path) -> str:
    """The tree's core and plugin packages, ahead of the installed (editable) ones."""
    dirs = [tree, *sorted(p for p in (tree / "plugins").iterdir() if (p / "pyproject.toml").exists())]
    return os.pathsep.join(str(d) for d in dirs)


def checkout(rev: str, where: Path) -> Path:
    """`rev` in a worktree at `where`, its compiled modules built in place."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    for d in [where, *sorted((where / "plugins").iterdir())]:
        if (d / "setup.py").exists():
            subprocess.run(
                [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                cwd=d, check=True, capture_output=True,
            )  # fmt: skip
    return where


def measure(tree: Path, capture: str, runs: int) -> dict:
    """One process: this script's child, with the tree's code (and its benchmarks/backtest.py)."""
    # one hash seed for every process (unless given): dict layouts then differ by the code only
    env = {"PYTHONHASHSEED": "0", **os.environ, "PYTHONPATH": import_path(tree), "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", str(tree), capture, str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"the backtest of {tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rev_a")
    ap.add_argument("rev_b")
    ap.add_argument("--rounds", type=int, default=4, help="processes of each revision, alternating")
    ap.add_argument("--runs", type=int, default=3, help="warm backtests a process")
    ap.add_argument("--repeat", type=int, default=400, help="Binance sessions in the built capture")
    ap.add_argument("--capture", help="a capture to use instead of building one")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import backtest as B

    with tempfile.TemporaryDirectory() as tmp:
        capture = args.capture
        if not capture:
            capture = str(Path(tmp) / "ab.jsonl.gz")
            B.build_capture(Path(capture), args.repeat, 100.0)
        trees = {}
        try:
            for name, rev in (("a", args.rev_a), ("b", args.rev_b)):
                print(f"building {rev} ...", file=sys.stderr, flush=True)
                trees[name] = checkout(rev, Path(tmp) / name)
            rates: dict[str, list[float]] = {"a": [], "b": []}
            digests: dict[str, set[str]] = {"a": set(), "b": set()}
            for i in range(args.rounds):
                for name in ("a", "b"):
                    out = measure(trees[name], capture, args.runs)
                    rates[name] += out["rates"]
                    digests[name].add(out["digest"])
                    shown = " ".join(f"{r:,.0f}" for r in out["rates"])
                    print(f"round {i + 1} {name}: {shown} events/s", file=sys.stderr, flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
                )
    result = {
        name: {
            "rev": rev,
            "mean": round(statistics.fmean(rates[name]), 1),
            "median": round(statistics.median(rates[name]), 1),
            "runs": [round(r, 1) for r in rates[name]],
        }
        for name, rev in (("a", args.rev_a), ("b", args.rev_b))
    }
    result["b_over_a"] = round(result["b"]["mean"] / result["a"]["mean"], 4)
    result["same_fills"] = len(digests["a"] | digests["b"]) == 1
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # measure(): TREE CAPTURE RUNS
        sys.path.insert(0, str(Path(sys.argv[2]) / "benchmarks"))
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
