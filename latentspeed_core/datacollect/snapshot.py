"""The system snapshot of a collection run: what the machine looked like (seed: "System" data).

Written into ``RUN_DIR/system/``; the ``*_start``/``*_end`` pairs bracket the run so
interrupt and NIC counters can be compared.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from . import procfs
from .checks import run_checks, summarise
from .procfs import ROOT, format_cpu_list

#: Kernel and network knobs that low-latency set-ups tune (socket buffers, RT throttling, tcp_low_latency).
SYSCTLS = (
    "kernel/sched_rt_runtime_us",
    "kernel/numa_balancing",
    "net/core/rmem_max",
    "net/core/wmem_max",
    "net/core/busy_poll",
    "net/core/busy_read",
    "net/ipv4/tcp_low_latency",
    "vm/swappiness",
)
COPIED = {"cmdline.txt": "proc/cmdline", "cpuinfo.txt": "proc/cpuinfo", "meminfo.txt": "proc/meminfo"}


def package_versions() -> dict[str, str]:
    """latentspeed distributions plus the libraries whose versions change the numbers."""
    out = {"python": platform.python_version()}
    for dist in distributions():
        name = dist.metadata.get("Name") or ""
        if name.lower().startswith("latentspeed"):
            out[name] = dist.version
    for name in ("numpy", "orjson", "uvloop", "pyzmq", "websockets", "pydantic", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def host_info(root: Path = ROOT) -> dict:
    uname = os.uname()
    return {
        "hostname": socket.gethostname(),
        "kernel": f"{uname.sysname} {uname.release} {uname.version}",
        "machine": uname.machine,
        "cpus_online": format_cpu_list(procfs.online_cpus(root)),
        "cpus_allowed": format_cpu_list(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
    }


def _irq_affinities(root: Path) -> str:
    lines = []
    for number, desc in sorted(procfs.interrupts(root).items()):
        lines.append(f"{number}\t{format_cpu_list(procfs.irq_affinity(number, root)) or '?'}\t{desc}")
    return "\n".join(lines) + "\n"


def write_start(system_dir: Path, cores: set[int], root: Path = ROOT) -> None:
    """Everything the run depends on, before it starts."""
    system_dir.mkdir(parents=True, exist_ok=True)
    for name, src in COPIED.items():
        (system_dir / name).write_text(procfs.read_text(root / src) or "(not readable)\n")
    (system_dir / "interrupts_start.txt").write_text(procfs.read_text(root / "proc/interrupts") or "")
    (system_dir / "irq_affinity.txt").write_text(_irq_affinities(root))
    _dump(system_dir / "nic_stats_start.json", procfs.nic_stats(root))
    active, control = procfs.smt_state(root)
    sysctls = {}
    for key in SYSCTLS:
        v = procfs.read_text(root / "proc/sys" / key)
        if v is not None:
            sysctls[key.replace("/", ".")] = v.strip()
    _dump(
        system_dir / "system.json",
        {
            "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": host_info(root),
            "kernel_cmdline": procfs.kernel_cmdline(root),
            "isolated_cpus": format_cpu_list(procfs.isolated_cpus(root)),
            "nohz_full_cpus": format_cpu_list(procfs.nohz_full_cpus(root)),
            "hugepages_by_size_kb": {str(k): v for k, v in procfs.hugepages(root).items()},
            "governors": {str(k): v for k, v in procfs.governors(root).items()},
            "smt": {"active": active, "control": control},
            "nic_irqs": {
                nic: [
                    {"irq": i.number, "name": i.name, "affinity": format_cpu_list(i.affinity)} for i in irqs
                ]
                for nic, irqs in procfs.nic_irqs(root).items()
            },
            "sysctl": sysctls,
        },
    )
    _dump(system_dir / "versions.json", package_versions())
    _dump(system_dir / "verify.json", summarise(run_checks(cores=cores or None, root=root)))


def write_end(system_dir: Path, root: Path = ROOT) -> None:
    (system_dir / "interrupts_end.txt").write_text(procfs.read_text(root / "proc/interrupts") or "")
    _dump(system_dir / "nic_stats_end.json", procfs.nic_stats(root))


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
