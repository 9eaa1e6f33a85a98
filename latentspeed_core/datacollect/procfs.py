"""Read-only views of /proc and /sys, rooted anywhere so tests can build a fake tree.

Every reader returns ``None`` or an empty value when a file is missing or unreadable
(containers and VMs hide much of /sys); callers decide what that means.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def parse_cpu_list(text: str | None) -> set[int]:
    """``"0-3,6,8-9"`` (the kernel's cpulist format) → ``{0,1,2,3,6,8,9}``; junk is ignored."""
    out: set[int] = set()
    if not text:
        return out
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        # isolcpus may carry flags before the list: "isolcpus=domain,managed_irq,6,7"
        if "-" in part:
            lo, _, hi = part.partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
                out.update(range(int(lo), int(hi) + 1))
        elif part.isdigit():
            out.add(int(part))
    return out


def format_cpu_list(cpus: set[int] | list[int]) -> str:
    """Inverse of :func:`parse_cpu_list`, with ranges folded."""
    items = sorted(set(cpus))
    runs: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        runs.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(runs)


def kernel_cmdline(root: Path = ROOT) -> str:
    """The kernel's own arguments; anything after ``--`` belongs to init and is dropped."""
    text = (read_text(root / "proc/cmdline") or "").strip()
    return text.split(" -- ", 1)[0].strip()


def cmdline_params(cmdline: str) -> dict[str, str]:
    """``key=value`` (or bare ``key`` → ``""``) parameters of a kernel command line; last one wins."""
    params: dict[str, str] = {}
    for token in cmdline.split():
        key, _, value = token.partition("=")
        params[key] = value
    return params


def online_cpus(root: Path = ROOT) -> set[int]:
    cpus = parse_cpu_list(read_text(root / "sys/devices/system/cpu/online"))
    if cpus:
        return cpus
    stat = read_text(root / "proc/stat") or ""
    return {int(m) for m in re.findall(r"^cpu(\d+) ", stat, re.M)}


def isolated_cpus(root: Path = ROOT) -> set[int]:
    """Cores removed from the scheduler: /sys's view, else the isolcpus= parameter."""
    cpus = parse_cpu_list(read_text(root / "sys/devices/system/cpu/isolated"))
    if cpus:
        return cpus
    return parse_cpu_list(cmdline_params(kernel_cmdline(root)).get("isolcpus"))


def nohz_full_cpus(root: Path = ROOT) -> set[int]:
    """Cores running tickless (nohz_full=): /sys's view, else the command line."""
    cpus = parse_cpu_list(read_text(root / "sys/devices/system/cpu/nohz_full"))
    if cpus:
        return cpus
    return parse_cpu_list(cmdline_params(kernel_cmdline(root)).get("nohz_full"))


def meminfo(root: Path = ROOT) -> dict[str, int]:
    """/proc/meminfo as numbers (kB for sizes, counts for HugePages_*)."""
    out: dict[str, int] = {}
    for line in (read_text(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key.strip()] = int(fields[0])
    return out


def hugepages(root: Path = ROOT) -> dict[int, int]:
    """Reserved huge pages per page size in kB, e.g. ``{1048576: 8, 2048: 0}``."""
    out: dict[int, int] = {}
    base = root / "sys/kernel/mm/hugepages"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        m = re.fullmatch(r"hugepages-(\d+)kB", entry.name)
        if not m:
            continue
        n = (read_text(entry / "nr_hugepages") or "").strip()
        out[int(m.group(1))] = int(n) if n.isdigit() else 0
    if not out:
        info = meminfo(root)
        if "Hugepagesize" in info:
            out[info["Hugepagesize"]] = info.get("HugePages_Total", 0)
    return out


def governors(root: Path = ROOT) -> dict[int, str]:
    """scaling_governor per core; empty when cpufreq is not exposed (common in VMs)."""
    out: dict[int, str] = {}
    for cpu in sorted(online_cpus(root)):
        g = read_text(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")
        if g is not None:
            out[cpu] = g.strip()
    return out


def smt_state(root: Path = ROOT) -> tuple[str | None, str | None]:
    """(active, control) from /sys/devices/system/cpu/smt: e.g. ("1", "on") or ("0", "notsupported")."""
    base = root / "sys/devices/system/cpu/smt"
    active = read_text(base / "active")
    control = read_text(base / "control")
    return (active.strip() if active else None, control.strip() if control else None)


def thread_siblings(root: Path = ROOT) -> dict[int, set[int]]:
    """Hyper-thread siblings of each core (a core with a busy sibling is not really isolated)."""
    out: dict[int, set[int]] = {}
    for cpu in sorted(online_cpus(root)):
        text = read_text(root / f"sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        if text is not None:
            out[cpu] = parse_cpu_list(text)
    return out


@dataclass(frozen=True, slots=True)
class Irq:
    number: int
    name: str
    affinity: set[int]


def nic_names(root: Path = ROOT) -> list[str]:
    """Network interfaces backed by a device (not lo, bridges or other virtual ones)."""
    base = root / "sys/class/net"
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return []
    return [n for n in names if n != "lo" and (base / n / "device").exists()]


def interrupts(root: Path = ROOT) -> dict[int, str]:
    """Numbered IRQs from /proc/interrupts → their description (chip, type and action names)."""
    out: dict[int, str] = {}
    lines = (read_text(root / "proc/interrupts") or "").splitlines()
    if not lines:
        return out
    ncpu = len(lines[0].split())
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        fields = rest.split()
        out[int(head)] = " ".join(fields[ncpu:])
    return out


def irq_affinity(number: int, root: Path = ROOT) -> set[int]:
    return parse_cpu_list(read_text(root / f"proc/irq/{number}/smp_affinity_list"))


def nic_irqs(root: Path = ROOT) -> dict[str, list[Irq]]:
    """IRQs of each NIC's queues, found by MSI vector list or by name in /proc/interrupts.

    Drivers name queue vectors after the interface (``eth0-TxRx-0``, ``mlx5_comp0@pci:...``)
    or after the virtio device (``virtio2-input.0``); the ``-config`` vector carries no traffic.
    """
    irqs = interrupts(root)
    out: dict[str, list[Irq]] = {}
    for nic in nic_names(root):
        dev = root / "sys/class/net" / nic / "device"
        numbers: set[int] = set()
        real = Path(os.path.realpath(dev))
        # A PCI NIC lists its vectors itself; a virtio NIC's are on its PCI parent.
        for msi in (real / "msi_irqs", real.parent / "msi_irqs"):
            try:
                numbers.update(int(p.name) for p in msi.iterdir() if p.name.isdigit())
            except OSError:
                pass
        devname = real.name
        for number, desc in irqs.items():
            words = desc.split()
            action = words[-1] if words else ""
            if re.search(rf"(^|[\s@-]){re.escape(nic)}([-_@\s]|$)", desc) or action.startswith(devname + "-"):
                numbers.add(number)
        found = [
            Irq(n, irqs.get(n, ""), irq_affinity(n, root))
            for n in sorted(numbers)
            if not irqs.get(n, "").endswith("-config")
        ]
        out[nic] = found
    return out


def listening_ports(root: Path = ROOT) -> set[int]:
    """TCP ports in LISTEN state (state 0A) from /proc/net/tcp and tcp6."""
    ports: set[int] = set()
    for name in ("proc/net/tcp", "proc/net/tcp6"):
        for line in (read_text(root / name) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                _, _, port = fields[1].rpartition(":")
                try:
                    ports.add(int(port, 16))
                except ValueError:
                    pass
    return ports


# --- sampling sources for the monitors -------------------------------------------------


def cpu_times(root: Path = ROOT) -> dict[str, list[int]]:
    """Jiffies per CPU line of /proc/stat: ``{"all": [...], "0": [...]}`` in the kernel's order
    (user nice system idle iowait irq softirq steal guest guest_nice)."""
    out: dict[str, list[int]] = {}
    for line in (read_text(root / "proc/stat") or "").splitlines():
        if not line.startswith("cpu"):
            continue
        fields = line.split()
        name = fields[0][3:] or "all"
        out[name] = [int(x) for x in fields[1:11]] + [0] * max(0, 10 - len(fields[1:11]))
    return out


def stat_counters(root: Path = ROOT) -> dict[str, int]:
    """ctxt, intr (total), procs_running and procs_blocked from /proc/stat."""
    out: dict[str, int] = {}
    for line in (read_text(root / "proc/stat") or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ("ctxt", "intr", "procs_running", "procs_blocked"):
            out[fields[0]] = int(fields[1])
    return out


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_ticks: int  # utime + stime
    rss_kb: int
    threads: int
    last_cpu: int
    voluntary_ctxt: int
    nonvoluntary_ctxt: int


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid: int, root: Path = ROOT) -> ProcSample | None:
    """One process's counters from /proc/<pid>/stat and status; ``None`` once it is gone."""
    stat = read_text(root / f"proc/{pid}/stat")
    if not stat:
        return None
    # The comm field may hold spaces and parentheses: split after the last ')'.
    rest = stat[stat.rfind(")") + 2 :].split()
    if len(rest) < 37:
        return None
    vol = nonvol = 0
    for line in (read_text(root / f"proc/{pid}/status") or "").splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            nonvol = int(line.split()[1])
    return ProcSample(
        cpu_ticks=int(rest[11]) + int(rest[12]),
        rss_kb=int(rest[21]) * PAGE_KB,
        threads=int(rest[17]),
        last_cpu=int(rest[36]),
        voluntary_ctxt=vol,
        nonvoluntary_ctxt=nonvol,
    )


def nic_stats(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Counters under /sys/class/net/<if>/statistics for every interface (lo included:
    the mock exchange runs on loopback)."""
    out: dict[str, dict[str, int]] = {}
    base = root / "sys/class/net"
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return out
    for name in names:
        stats: dict[str, int] = {}
        try:
            files = sorted((base / name / "statistics").iterdir())
        except OSError:
            continue
        for f in files:
            v = (read_text(f) or "").strip()
            if v.isdigit():
                stats[f.name] = int(v)
        out[name] = stats
    return out
