"""PNG pictures of a run: latency histogram + CDF per stage, CPU over time.

matplotlib is optional (the core's ``analysis`` extra); importing this module raises
ImportError without it, which :func:`analysis.analyze_run` reports instead of plotting.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .analysis import STAGES, read_csv  # noqa: E402


def plot_latency(values: dict[str, np.ndarray], path: Path) -> Path:
    """One row per stage: a histogram (clipped at p99.9 so the tail does not flatten it,
    with the clipped count in the title) and the empirical CDF on a log axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(STAGES), 2, figsize=(12, 3.0 * len(STAGES)), squeeze=False)
    for row, (key, label, *_) in enumerate(STAGES):
        hist_ax, cdf_ax = axes[row]
        us = values.get(key, np.empty(0))
        if us.size == 0:
            for ax in (hist_ax, cdf_ax):
                ax.text(0.5, 0.5, f"{label}: no samples", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
            continue
        p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
        shown = us[us <= p999]
        hist_ax.hist(shown, bins=min(100, max(10, shown.size // 20)), color="#3b75af")
        for q, name, style in ((p50, "p50", "-"), (p99, "p99", "--")):
            hist_ax.axvline(q, color="#c44e52", linestyle=style, linewidth=1, label=f"{name} {q:.1f} µs")
        hist_ax.set_title(
            f"{label}  (n={us.size}, {us.size - shown.size} above p99.9 not shown)", fontsize=10
        )
        hist_ax.set_xlabel("µs")
        hist_ax.set_ylabel("orders")
        hist_ax.legend(fontsize=8)
        xs = np.sort(us)
        ys = np.arange(1, xs.size + 1) / xs.size
        cdf_ax.plot(np.maximum(xs, 1e-3), ys, color="#3b75af")
        cdf_ax.set_xscale("log")
        cdf_ax.set_ylim(0, 1.0)
        cdf_ax.axhline(0.99, color="#999999", linestyle=":", linewidth=1)
        cdf_ax.set_title(f"{label}: CDF", fontsize=10)
        cdf_ax.set_xlabel("µs (log)")
        cdf_ax.set_ylabel("fraction ≤ x")
        cdf_ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_cpu(monitors: Path, path: Path, pinned: list[int] | None = None) -> Path | None:
    """Per-core busy % (pinned cores drawn thick) and per-process CPU % over the run."""
    cpu_rows = read_csv(monitors / "cpu.csv")
    proc_rows = read_csv(monitors / "processes.csv")
    if not cpu_rows and not proc_rows:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    pinned_names = {str(c) for c in pinned or []}
    fig, (core_ax, proc_ax) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in cpu_rows:
        xs, ys = series[r["cpu"]]
        xs.append(float(r["elapsed_s"]))
        ys.append(float(r["busy_pct"]))
    for name, (xs, ys) in sorted(series.items()):
        label = "all cores" if name == "all" else f"cpu{name}" + (" (pinned)" if name in pinned_names else "")
        width = 2.5 if name in pinned_names else (1.5 if name == "all" else 0.8)
        core_ax.plot(xs, ys, label=label, linewidth=width, linestyle="--" if name == "all" else "-")
    core_ax.set_ylabel("busy %")
    core_ax.set_ylim(0, 105)
    core_ax.set_title("CPU per core")
    if series:
        core_ax.legend(fontsize=8, ncol=4)
    procs: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in proc_rows:
        xs, ys = procs[r["name"]]
        xs.append(float(r["elapsed_s"]))
        ys.append(float(r["cpu_pct"]))
    for name, (xs, ys) in sorted(procs.items()):
        proc_ax.plot(xs, ys, label=name)
    proc_ax.set_ylabel("CPU % (100 = one core)")
    proc_ax.set_xlabel("seconds since start")
    proc_ax.set_title("CPU per process")
    if procs:
        proc_ax.legend(fontsize=8)
    for ax in (core_ax, proc_ax):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
