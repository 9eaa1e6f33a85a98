"""Background monitors: each second, one row per CSV (what mpstat/vmstat show, read from /proc).

Files, all with a header row, ``ts`` in Unix seconds and ``elapsed_s`` since the start:
- ``cpu.csv``: ts, elapsed_s, cpu (``all`` or the core number), busy_pct, user_pct, system_pct,
  iowait_pct, irq_pct, softirq_pct, steal_pct, idle_pct
- ``memory.csv``: ts, elapsed_s, mem_total_kb, mem_available_kb, mem_used_kb, mem_used_pct,
  swap_used_kb, hugepages_total, hugepages_free
- ``context_switches.csv``: ts, elapsed_s, ctxt_per_s, intr_per_s, procs_running, procs_blocked
- ``processes.csv``: ts, elapsed_s, name, pid, cpu_pct, rss_kb, threads, last_cpu,
  voluntary_ctxt_switches, nonvoluntary_ctxt_switches (one row per watched child process)
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from pathlib import Path

from . import procfs
from .procfs import ROOT

log = logging.getLogger(__name__)

CPU_FIELDS = [
    "ts",
    "elapsed_s",
    "cpu",
    "busy_pct",
    "user_pct",
    "system_pct",
    "iowait_pct",
    "irq_pct",
    "softirq_pct",
    "steal_pct",
    "idle_pct",
]
MEMORY_FIELDS = [
    "ts",
    "elapsed_s",
    "mem_total_kb",
    "mem_available_kb",
    "mem_used_kb",
    "mem_used_pct",
    "swap_used_kb",
    "hugepages_total",
    "hugepages_free",
]
CTXT_FIELDS = ["ts", "elapsed_s", "ctxt_per_s", "intr_per_s", "procs_running", "procs_blocked"]
PROCESS_FIELDS = [
    "ts",
    "elapsed_s",
    "name",
    "pid",
    "cpu_pct",
    "rss_kb",
    "threads",
    "last_cpu",
    "voluntary_ctxt_switches",
    "nonvoluntary_ctxt_switches",
]
FILES = {
    "cpu.csv": CPU_FIELDS,
    "memory.csv": MEMORY_FIELDS,
    "context_switches.csv": CTXT_FIELDS,
    "processes.csv": PROCESS_FIELDS,
}


def _pct(part: int, total: int) -> float:
    return round(100.0 * part / total, 2) if total > 0 else 0.0


class SystemMonitor:
    """Samples the machine and the watched processes every ``interval`` seconds on a thread.

    A sample that cannot be read (a process gone, a file hidden) is skipped and counted,
    never fatal: the monitor must outlive whatever it watches.
    """

    def __init__(self, out_dir: Path, interval: float = 1.0, root: Path = ROOT):
        self.out_dir = Path(out_dir)
        self.interval = interval
        self.root = root
        self.samples = 0
        self.errors = 0
        self._watched: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def watch(self, name: str, pid: int) -> None:
        """Add a process (by a stable name such as ``engine``) to ``processes.csv``."""
        with self._lock:
            self._watched[pid] = name

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="system-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> SystemMonitor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        handles = {name: (self.out_dir / name).open("w", newline="") for name in FILES}
        writers = {name: csv.writer(handles[name]) for name in FILES}
        for name, fields in FILES.items():
            writers[name].writerow(fields)
        prev_cpu = procfs.cpu_times(self.root)
        prev_counters = procfs.stat_counters(self.root)
        prev_procs: dict[int, procfs.ProcSample] = {}
        prev_t = time.monotonic()
        self._t0 = prev_t
        next_t = prev_t + self.interval
        try:
            while not self._stop.wait(max(0.0, next_t - time.monotonic())):
                next_t += self.interval
                now = time.monotonic()
                dt = now - prev_t
                prev_t = now
                ts = round(time.time(), 3)
                elapsed = round(now - self._t0, 3)
                try:
                    prev_cpu = self._sample_cpu(writers["cpu.csv"], ts, elapsed, prev_cpu)
                    self._sample_memory(writers["memory.csv"], ts, elapsed)
                    prev_counters = self._sample_counters(
                        writers["context_switches.csv"], ts, elapsed, dt, prev_counters
                    )
                    self._sample_processes(writers["processes.csv"], ts, elapsed, dt, prev_procs)
                    self.samples += 1
                except (OSError, ValueError, IndexError) as exc:
                    self.errors += 1
                    log.warning("monitor sample skipped: %s", exc)
                for h in handles.values():
                    h.flush()
        finally:
            for h in handles.values():
                h.close()

    def _sample_cpu(self, w, ts: float, elapsed: float, prev: dict[str, list[int]]) -> dict[str, list[int]]:
        cur = procfs.cpu_times(self.root)
        for name, times in cur.items():
            before = prev.get(name)
            if before is None:
                continue
            d = [a - b for a, b in zip(times, before, strict=True)]
            # Guest time is already counted inside user/nice by the kernel: leave it out of the total.
            user, nice, system, idle, iowait, irq, softirq, steal = d[:8]
            total = user + nice + system + idle + iowait + irq + softirq + steal
            w.writerow(
                [
                    ts,
                    elapsed,
                    name,
                    _pct(total - idle - iowait, total),
                    _pct(user + nice, total),
                    _pct(system, total),
                    _pct(iowait, total),
                    _pct(irq, total),
                    _pct(softirq, total),
                    _pct(steal, total),
                    _pct(idle, total),
                ]
            )
        return cur

    def _sample_memory(self, w, ts: float, elapsed: float) -> None:
        m = procfs.meminfo(self.root)
        total = m.get("MemTotal", 0)
        avail = m.get("MemAvailable", m.get("MemFree", 0))
        used = total - avail
        w.writerow(
            [
                ts,
                elapsed,
                total,
                avail,
                used,
                _pct(used, total),
                m.get("SwapTotal", 0) - m.get("SwapFree", 0),
                m.get("HugePages_Total", 0),
                m.get("HugePages_Free", 0),
            ]
        )

    def _sample_counters(self, w, ts, elapsed, dt, prev: dict[str, int]) -> dict[str, int]:
        cur = procfs.stat_counters(self.root)
        rate = (lambda k: round((cur.get(k, 0) - prev.get(k, 0)) / dt, 1)) if dt > 0 else (lambda k: 0.0)
        w.writerow(
            [
                ts,
                elapsed,
                rate("ctxt"),
                rate("intr"),
                cur.get("procs_running", 0),
                cur.get("procs_blocked", 0),
            ]
        )
        return cur

    def _sample_processes(self, w, ts, elapsed, dt, prev: dict[int, procfs.ProcSample]) -> None:
        with self._lock:
            watched = dict(self._watched)
        for pid, name in watched.items():
            s = procfs.proc_sample(pid, self.root)
            if s is None:
                prev.pop(pid, None)
                continue
            before = prev.get(pid)
            cpu = 0.0
            if before is not None and dt > 0:
                cpu = round(100.0 * (s.cpu_ticks - before.cpu_ticks) / procfs.CLK_TCK / dt, 2)
            prev[pid] = s
            w.writerow(
                [
                    ts,
                    elapsed,
                    name,
                    pid,
                    cpu,
                    s.rss_kb,
                    s.threads,
                    s.last_cpu,
                    s.voluntary_ctxt,
                    s.nonvoluntary_ctxt,
                ]
            )
