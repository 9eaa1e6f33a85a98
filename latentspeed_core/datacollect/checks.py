"""Pre-flight checks of a trading host (``latentspeed verify``), from /proc and /sys only.

Each check says PASS, WARN (not tuned, works anyway) or FAIL (will hurt or break a run),
with what it saw and what to do. Nothing here changes the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

from ..known_plugins import install_hint
from . import procfs
from .procfs import ROOT, format_cpu_list

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

DEFAULT_PORTS = (9000, 5556, 5557)
GIB_KB = 1024 * 1024
#: Huge pages take at most this share of RAM (the rest stays for the OS, Python, page cache)...
HUGEPAGE_RAM_SHARE = 8
#: ... and at most this much in all (kB): more than the engine's buffers ever need.
HUGEPAGE_MAX_KB = 8 * GIB_KB
SETUP_HINT = "run scripts/setup_kernel.sh --cores {cores} and reboot"
#: For a pip user and for a source checkout alike.
INSTALL_HINT = "pip install latentspeed-core (in a source checkout: python3 dev.py setup)"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Cores to isolate and huge pages to reserve on this machine, with the reason for each."""

    cores: tuple[int, ...]
    cores_why: str
    hugepagesz: str  # "1G" or "2M", as the kernel parameter writes it
    hugepages: int
    hugepages_why: str

    @property
    def kernel_params(self) -> str:
        return f"hugepagesz={self.hugepagesz} hugepages={self.hugepages}"


def recommend(root: Path = ROOT) -> Recommendation:
    """Derive the layout from the machine, as scripts/setup_kernel.sh does (same rules).

    Cores: the last two online CPUs when there are four or more, the last one on a 2-3 CPU
    machine (the OS and interrupts keep the rest), none on one CPU. Huge pages: 1 GiB pages
    when the kernel offers them, else 2 MiB; at most an eighth of RAM and at most 8 GiB.
    """
    online = sorted(procfs.online_cpus(root)) or [0]
    n = len(online)
    take = 2 if n >= 4 else 1 if n >= 2 else 0
    cores = tuple(online[n - take :]) if take else ()
    if cores:
        kept = format_cpu_list(online[: n - take])
        cores_why = f"the last {take} of {n} CPUs; CPU {kept} left to the OS and interrupts"
    else:
        cores_why = "one CPU only: nothing can be isolated"
    mem_kb = procfs.meminfo(root).get("MemTotal", 0)
    budget = min(mem_kb // HUGEPAGE_RAM_SHARE, HUGEPAGE_MAX_KB)
    one_gib = (root / "sys/kernel/mm/hugepages/hugepages-1048576kB").is_dir() or " pdpe1gb" in (
        procfs.read_text(root / "proc/cpuinfo") or ""
    )
    size_kb, size = (GIB_KB, "1G") if one_gib and budget >= GIB_KB else (2048, "2M")
    pages = budget // size_kb
    unit = "1 GiB" if size == "1G" else "2 MiB"
    if not mem_kb:
        pages_why = "RAM size unknown (/proc/meminfo unreadable): reserve at most an eighth of RAM"
    else:
        pages_why = (
            f"{pages} × {unit} = {pages * size_kb / GIB_KB:g} GiB: at most an eighth of"
            f" {mem_kb / GIB_KB:.0f} GiB RAM and at most 8 GiB, so most memory stays free"
        )
    return Recommendation(cores, cores_why, size, pages, pages_why)


def default_cores(root: Path = ROOT) -> tuple[int, ...]:
    """The cores ``verify`` expects isolated when ``--cores`` is not given: see :func:`recommend`."""
    return recommend(root).cores


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    observed: str
    advice: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _cores_text(cores: set[int]) -> str:
    return format_cpu_list(cores) if cores else "none"


def _setup_hint(cores: set[int], root: Path) -> str:
    """How to isolate ``cores``, and why these cores when they are the recommended ones."""
    rec = recommend(root)
    if not cores:
        return f"nothing to isolate ({rec.cores_why})"
    hint = SETUP_HINT.format(cores=",".join(map(str, sorted(cores))))
    if tuple(sorted(cores)) == rec.cores:
        hint += f" (CPU {format_cpu_list(cores)}: {rec.cores_why})"
    return hint


def check_isolcpus(cores: set[int], root: Path = ROOT) -> Check:
    iso = procfs.isolated_cpus(root)
    online = procfs.online_cpus(root)
    hint = _setup_hint(cores, root)
    if not iso:
        return Check("isolcpus", WARN, "no isolated cores", f"isolate the trading cores: {hint}")
    missing_online = iso - online
    if missing_online:
        return Check(
            "isolcpus",
            FAIL,
            f"isolated {_cores_text(iso)}, but {_cores_text(missing_online)} not online",
            "isolcpus names cores this machine does not have: fix the kernel command line",
        )
    if cores and not cores <= iso:
        return Check(
            "isolcpus",
            WARN,
            f"isolated {_cores_text(iso)}; wanted {_cores_text(cores)}",
            f"pin to the isolated cores instead, or {hint}",
        )
    return Check("isolcpus", PASS, f"isolated {_cores_text(iso)}")


def check_nohz_full(cores: set[int], root: Path = ROOT) -> Check:
    nohz = procfs.nohz_full_cpus(root)
    iso = procfs.isolated_cpus(root)
    hint = _setup_hint(cores, root)
    if not nohz:
        return Check(
            "nohz_full", WARN, "no tickless cores", f"stop the scheduler tick on trading cores: {hint}"
        )
    if iso and nohz != iso:
        return Check(
            "nohz_full",
            WARN,
            f"nohz_full {_cores_text(nohz)} != isolcpus {_cores_text(iso)}",
            "give nohz_full= and isolcpus= the same core list",
        )
    return Check("nohz_full", PASS, f"tickless {_cores_text(nohz)}")


def check_hugepages(root: Path = ROOT) -> Check:
    pages = procfs.hugepages(root)
    rec = recommend(root)
    what = (
        f"{rec.kernel_params} ({rec.hugepages_why}; scripts/setup_kernel.sh)"
        if rec.hugepages
        else rec.hugepages_why
    )
    text = (
        ", ".join(f"{n} × {size // 1024} MiB" for size, n in sorted(pages.items(), reverse=True))
        or "not exposed"
    )
    gib = pages.get(GIB_KB, 0)
    if gib > 0:
        return Check("hugepages", PASS, text)
    if any(pages.values()):
        return Check("hugepages", WARN, text, f"reserve larger pages: {what}")
    return Check("hugepages", WARN, text, f"reserve huge pages: {what}")


def check_irq_affinity(root: Path = ROOT) -> Check:
    iso = procfs.isolated_cpus(root)
    per_nic = procfs.nic_irqs(root)
    queues = [(nic, irq) for nic, irqs in per_nic.items() for irq in irqs]
    if not per_nic:
        return Check("irq_affinity", WARN, "no physical NIC found", "nothing to check (loopback only)")
    if not queues:
        return Check(
            "irq_affinity",
            WARN,
            f"{', '.join(per_nic)}: no queue IRQs found in /proc/interrupts",
            "check the NIC driver's IRQ names by hand (cat /proc/interrupts)",
        )
    bad = [(nic, irq) for nic, irq in queues if irq.affinity & iso]
    summary = "; ".join(
        f"{nic}: IRQ {', '.join(str(i.number) for i in per_nic[nic])} on "
        f"{_cores_text(set().union(*(i.affinity for i in per_nic[nic])))}"
        for nic in per_nic
        if per_nic[nic]
    )
    if bad:
        allowed = format_cpu_list(procfs.online_cpus(root) - iso) or "0"
        nums = ", ".join(str(irq.number) for _, irq in bad)
        return Check(
            "irq_affinity",
            FAIL,
            f"IRQ {nums} may run on isolated cores {_cores_text(iso)} ({summary})",
            f"move them: echo {allowed} > /proc/irq/N/smp_affinity_list for N in {nums}; "
            f"ban the cores in irqbalance (IRQBALANCE_BANNED_CPULIST={format_cpu_list(iso)})",
        )
    if not iso:
        return Check("irq_affinity", WARN, summary, "no isolated cores yet: NIC IRQs may land on any core")
    return Check("irq_affinity", PASS, summary)


def check_governor(root: Path = ROOT) -> Check:
    govs = procfs.governors(root)
    if not govs:
        return Check(
            "cpu_governor",
            WARN,
            "cpufreq not exposed (VM or no driver)",
            "frequency is set by the host/BIOS: ask for performance mode / C-states off",
        )
    slow = {c: g for c, g in govs.items() if g != "performance"}
    kinds = ", ".join(sorted(set(govs.values())))
    if slow:
        return Check(
            "cpu_governor",
            WARN,
            f"{kinds} on {_cores_text(set(slow))}",
            "sudo cpupower frequency-set -g performance",
        )
    return Check("cpu_governor", PASS, "performance on every core")


def check_smt(root: Path = ROOT) -> Check:
    active, control = procfs.smt_state(root)
    iso = procfs.isolated_cpus(root)
    if active is None and control is None:
        return Check("smt", WARN, "SMT state not exposed", "check lscpu: Thread(s) per core")
    observed = f"active={active} control={control}"
    if active == "1":
        siblings = procfs.thread_siblings(root)
        shared = {s for c in iso for s in siblings.get(c, {c})} - iso
        if iso and not shared:
            return Check("smt", PASS, observed + "; isolated cores' siblings are isolated too")
        return Check(
            "smt",
            WARN,
            observed,
            "hyper-thread siblings share a core's caches: boot with nosmt, or isolate both siblings",
        )
    return Check("smt", PASS, observed)


def latentspeed_executable() -> str | None:
    """The installed ``latentspeed`` command: on PATH, else beside this interpreter (a venv)."""
    found = shutil.which("latentspeed")
    if found:
        return found
    beside = Path(sys.executable).parent / "latentspeed"
    return str(beside) if beside.exists() else None


def check_command() -> Check:
    exe = latentspeed_executable()
    if exe is None:
        return Check("latentspeed_command", FAIL, "not installed", INSTALL_HINT)
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("latentspeed_command", FAIL, f"{exe}: {exc}", f"reinstall: {INSTALL_HINT}")
    if out.returncode != 0:
        return Check(
            "latentspeed_command",
            FAIL,
            f"{exe} --version exited {out.returncode}",
            (out.stderr.strip().splitlines() or [f"reinstall: {INSTALL_HINT}"])[-1],
        )
    on_path = shutil.which("latentspeed") is not None
    observed = f"{out.stdout.strip()} at {exe}"
    if not on_path:
        return Check("latentspeed_command", WARN, observed, "not on PATH: activate the virtualenv")
    return Check("latentspeed_command", PASS, observed)


#: Plugins ``latentspeed collect`` needs: the mock exchange and the market maker.
NEEDED_PLUGINS = ("mock", "examples")


def check_plugins(loaded: list[str] | None = None) -> Check:
    installed = sorted({ep.name for ep in entry_points(group="latentspeed")})
    names = ", ".join(installed) or "none"
    if loaded is not None:
        broken = [n for n in installed if n not in loaded]
        if broken:
            return Check(
                "plugins",
                WARN,
                f"installed {names}; failed to load: {', '.join(broken)}",
                "run latentspeed plugins to see the import error",
            )
    missing = [n for n in NEEDED_PLUGINS if n not in installed]
    if missing:
        return Check(
            "plugins",
            WARN,
            f"installed {names}",
            f"latentspeed collect needs plugin(s) {', '.join(missing)}: {install_hint(*missing)}",
        )
    return Check("plugins", PASS, f"installed {names}")


def check_ports(ports: tuple[int, ...], root: Path = ROOT) -> Check:
    busy = sorted(set(ports) & procfs.listening_ports(root))
    wanted = ", ".join(str(p) for p in ports)
    if busy:
        return Check(
            "ports",
            WARN,
            f"in use: {', '.join(str(p) for p in busy)} (of {wanted})",
            "another process listens there: stop it or configure other ports",
        )
    return Check("ports", PASS, f"free: {wanted}")


def run_checks(
    cores: set[int] | None = None,
    ports: tuple[int, ...] = DEFAULT_PORTS,
    loaded_plugins: list[str] | None = None,
    root: Path = ROOT,
) -> list[Check]:
    """Every pre-flight check, in the order a person fixes them."""
    cores = set(default_cores(root)) if cores is None else cores
    return [
        check_isolcpus(cores, root),
        check_nohz_full(cores, root),
        check_hugepages(root),
        check_irq_affinity(root),
        check_governor(root),
        check_smt(root),
        check_command(),
        check_plugins(loaded_plugins),
        check_ports(ports, root),
    ]


def summarise(checks: list[Check]) -> dict:
    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL)}
    return {"ok": counts[FAIL] == 0, "counts": counts, "checks": [c.as_dict() for c in checks]}
