"""Pre-flight checks of a trading host (the seed's verify_system.sh), from /proc and /sys only.

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

from . import procfs
from .procfs import ROOT, format_cpu_list

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

#: The seed's layout: network and strategy threads on cores 6 and 7, 8 × 1 GiB huge pages.
DEFAULT_CORES = (6, 7)
DEFAULT_PORTS = (9000, 5556, 5557)
GIB_KB = 1024 * 1024
SETUP_HINT = "run scripts/setup_kernel.sh --cores {cores} and reboot"


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


def check_isolcpus(cores: set[int], root: Path = ROOT) -> Check:
    iso = procfs.isolated_cpus(root)
    online = procfs.online_cpus(root)
    hint = SETUP_HINT.format(cores=",".join(map(str, sorted(cores))))
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
    hint = SETUP_HINT.format(cores=",".join(map(str, sorted(cores))))
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
    text = (
        ", ".join(f"{n} × {size // 1024} MiB" for size, n in sorted(pages.items(), reverse=True))
        or "not exposed"
    )
    gib = pages.get(GIB_KB, 0)
    if gib > 0:
        return Check("hugepages", PASS, text)
    if any(pages.values()):
        return Check(
            "hugepages",
            WARN,
            text,
            "reserve 1 GiB pages: hugepagesz=1G hugepages=8 (scripts/setup_kernel.sh)",
        )
    return Check(
        "hugepages", WARN, text, "reserve huge pages: hugepagesz=1G hugepages=8 (scripts/setup_kernel.sh)"
    )


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
        return Check("latentspeed_command", FAIL, "not installed", "pip install -e . (see README)")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("latentspeed_command", FAIL, f"{exe}: {exc}", "reinstall: pip install -e .")
    if out.returncode != 0:
        return Check(
            "latentspeed_command",
            FAIL,
            f"{exe} --version exited {out.returncode}",
            (out.stderr.strip().splitlines() or ["reinstall: pip install -e ."])[-1],
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
            f"latentspeed collect needs plugin(s) {', '.join(missing)}: pip install -e plugins/...",
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
    cores = set(DEFAULT_CORES) if cores is None else cores
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
