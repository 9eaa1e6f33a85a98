"""`latentspeed collect --duration 10` against the real mock exchange and engine, then `analyze`.

The issue's acceptance test: manifest, every monitor file, the seed's eight verification
steps, latency percentiles for every stage, orders and fills, and the plot files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentspeed_core.datacollect.runner import STEPS, expected_files

STAGES = ("md_to_decision", "decision_to_sent", "order_to_ack", "order_to_fill", "tick_to_trade")
PERCENTILES = ("count", "min", "max", "mean", "p50", "p95", "p99", "p99.9")


def latentspeed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    exe = Path(sys.executable).parent / "latentspeed"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)


def _kill_processes_working_in(root: Path) -> None:
    """SIGKILL every process whose working directory is under ``root`` (collect starts its children
    in the run directory)."""
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == root or root in cwd.parents:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def only_run_dir(out: Path) -> Path:
    [run] = [p for p in out.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    res = latentspeed("collect", "--duration", "10", "--out", str(out), timeout=120)
    return res, only_run_dir(out)


def test_collect_passes_the_eight_verification_steps(collected):
    res, run = collected
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    steps = manifest["verification"]
    assert [s["name"] for s in steps] == [name for name, _ in STEPS]
    failed = [s for s in steps if not s["passed"]]
    assert not failed, failed
    assert manifest["passed"] is True
    assert manifest["processes"]["engine"]["exit_code"] == 0
    assert manifest["processes"]["mock_exchange"]["exit_code"] == 0
    assert manifest["engine_stats"]["orders"] > 0 and manifest["engine_stats"]["fills"] > 0
    assert manifest["duration_s"]["requested"] == 10


def test_the_run_directory_holds_every_file_with_relative_paths_only(collected):
    _, run = collected
    manifest = json.loads((run / "manifest.json").read_text())
    listed = {f["path"] for f in manifest["files"]}
    for rel in expected_files():
        assert rel in listed and (run / rel).stat().st_size > 0, rel
    for rel in listed:
        assert not os.path.isabs(rel) and (run / rel).is_file(), rel
    assert str(run) not in (run / "manifest.json").read_text()
    for name in ("cpu.csv", "memory.csv", "context_switches.csv", "processes.csv"):
        with (run / "monitors" / name).open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) >= 5, name  # sampled each second through a 10 s run
    with (run / "monitors/processes.csv").open() as f:
        names = {r["name"] for r in csv.DictReader(f)}
    assert {"engine", "mock_exchange"} <= names
    perf = (run / "logs/perf_stat.txt").read_text()
    if manifest["perf"].get("counters"):
        assert "Performance counter stats" in perf
    else:  # no perf here, or not allowed: the file says why
        assert "perf" in perf and manifest["perf"]["note"]


def test_analyze_on_a_copy_of_the_run(collected, tmp_path):
    _, run = collected
    copy = tmp_path / "collected_data" / run.name
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "plots", ignore_errors=True)
    (copy / "report.json").unlink()
    res = latentspeed("analyze", str(copy), "--json-out", str(tmp_path / "report.json"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    for stage in STAGES:
        stats = report["latency_us"][stage]
        assert stats["count"] > 0, stage
        for key in PERCENTILES:
            assert stats[key] is not None and stats[key] >= 0, (stage, key)
        assert stats["min"] <= stats["p50"] <= stats["p99"] <= stats["p99.9"] <= stats["max"], stage
    t = report["trading"]
    assert t["orders"] > 0 and t["fills"] > 0 and 0 < t["fill_ratio"] <= 1
    assert report["throughput"]["md_messages_per_s"] > 0
    assert {"engine", "mock_exchange"} <= set(report["cpu"]["per_process"])
    assert report["plots"] == ["plots/latency.png", "plots/cpu.png"]
    for p in report["plots"]:
        assert (copy / p).read_bytes()[:4] == b"\x89PNG"
    assert "tick-to-trade" in res.stdout


def test_pinned_engine_runs_only_on_its_core(tmp_path):
    core = max(os.sched_getaffinity(0))
    res = latentspeed(
        "collect",
        "--duration",
        "2",
        "--out",
        str(tmp_path),
        "--network-core",
        str(core),
        "--strategy-core",
        str(core),
        "--interval",
        "0.5",
        "--no-plots",
        timeout=90,
    )
    run = only_run_dir(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["cores"]["pinned"] == [core] and manifest["cores"]["warning"] is None
    assert all(s["passed"] for s in manifest["verification"][:4]), manifest["verification"]
    report = json.loads((run / "report.json").read_text())
    assert report["cpu"]["per_process"]["engine"]["cores_seen"] == [core], res.stderr[-2000:]
    assert report["cpu"]["pinned_cores"] == [core]


def test_ctrl_c_stops_the_run_early_and_still_writes_everything(tmp_path):
    import signal

    from latentspeed_core.testing import wait_for

    exe = Path(sys.executable).parent / "latentspeed"
    proc = subprocess.Popen(
        [str(exe), "collect", "--duration", "120", "--out", str(tmp_path), "--no-plots"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def connected() -> bool:
            runs = [p for p in tmp_path.iterdir() if p.is_dir()]
            log = runs[0] / "logs/engine.log" if runs else None
            return bool(log and log.is_file() and "Connected to exchange" in log.read_text())

        wait_for(connected, timeout=30, what="the engine to connect")
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Where it hangs: every thread's stack (the CLI dumps them on SIGUSR1), then the failure.
            proc.send_signal(signal.SIGUSR1)
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired as exc:
                out = (
                    exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
                )
            pytest.fail(f"collect did not stop within 60 s of SIGINT:\n{out[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # its children run in sessions of their own: a collect killed here must not leave them running
        _kill_processes_working_in(tmp_path)
    run = only_run_dir(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["interrupted"] is True, out[-2000:]
    assert manifest["duration_s"]["actual"] < 60
    assert manifest["processes"]["engine"]["stopped_by"] == "SIGINT"
    assert manifest["processes"]["engine"]["exit_code"] == 0
    assert manifest["verification"][2]["passed"]  # engine connected
    assert (run / "report.json").is_file()
