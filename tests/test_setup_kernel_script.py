"""scripts/setup_kernel.sh: shows the change, edits nothing without --apply, backs up before editing,
and by default recommends what fits the machine (the same as ``latentspeed verify``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from latentspeed_core.datacollect.checks import recommend

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup_kernel.sh"
GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash isolcpus=2,3 hugepages=4"\nGRUB_CMDLINE_LINUX=""\n'
SERVER_PARAMS = "isolcpus=6,7 nohz_full=6,7 hugepagesz=1G hugepages=8"
GIB_KB = 1024 * 1024


def machine(root: Path, cpus: str, mem_kb: int, one_gib_pages: bool = True) -> Path:
    """A fake /proc + /sys with just what the recommendation reads."""
    (root / "sys/devices/system/cpu").mkdir(parents=True, exist_ok=True)
    (root / "sys/devices/system/cpu/online").write_text(cpus + "\n")
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kb} kB\nMemFree:        1000 kB\n")
    (root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz quiet\n")
    (root / "sys/kernel/mm/hugepages/hugepages-2048kB").mkdir(parents=True, exist_ok=True)
    if one_gib_pages:
        (root / "sys/kernel/mm/hugepages/hugepages-1048576kB").mkdir(parents=True, exist_ok=True)
    return root


def run(grub: Path, *args: str, sysroot: Path | None = None) -> subprocess.CompletedProcess:
    """The script on an 8-CPU, 64 GiB server unless ``sysroot`` says otherwise."""
    if sysroot is None:
        sysroot = machine(grub.parent / "server", "0-7", 64 * GIB_KB)
    env = {**os.environ, "GRUB_FILE": str(grub), "SYSROOT": str(sysroot)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30)


def backups(grub: Path) -> list[Path]:
    return sorted(grub.parent.glob(grub.name + ".bak.*"))


def test_dry_run_shows_the_server_parameters_and_changes_nothing(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    out = run(grub)
    assert out.returncode == 0, out.stderr
    assert SERVER_PARAMS in out.stdout
    assert f'+ GRUB_CMDLINE_LINUX_DEFAULT="quiet splash {SERVER_PARAMS}"' in out.stdout
    assert "Dry run: nothing changed" in out.stdout
    assert grub.read_text() == GRUB
    assert backups(grub) == []


def test_apply_backs_up_then_replaces_old_values_once(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    out = run(grub, "--cores", "4,5", "--hugepages", "2", "--apply")
    assert out.returncode == 0, out.stderr
    [backup] = backups(grub)
    assert backup.read_text() == GRUB
    assert grub.read_text() == GRUB.replace(
        '"quiet splash isolcpus=2,3 hugepages=4"',
        '"quiet splash isolcpus=4,5 nohz_full=4,5 hugepagesz=1G hugepages=2"',
    )
    again = run(grub, "--cores", "4,5", "--hugepages", "2", "--apply")
    assert again.returncode == 0 and "Already configured" in again.stdout
    assert len(backups(grub)) == 1


def test_apply_adds_the_line_when_grub_has_none(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text("GRUB_DEFAULT=0\n")
    assert run(grub, "--apply").returncode == 0
    assert grub.read_text() == f'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="{SERVER_PARAMS}"\n'


def test_bad_arguments_and_missing_file_are_errors(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    assert run(grub, "--cores", "6;reboot").returncode == 2
    assert run(grub, "--frobnicate").returncode == 2
    missing = run(tmp_path / "nope", "--apply")
    assert missing.returncode == 1 and "cannot apply" in missing.stderr
    assert grub.read_text() == GRUB


@pytest.mark.parametrize(
    ("cpus", "mem_kb", "one_gib", "params"),
    [
        ("0-7", 64 * GIB_KB, True, "isolcpus=6,7 nohz_full=6,7 hugepagesz=1G hugepages=8"),
        # The 2-CPU, 24 GiB VM: MemTotal is a little under 24 GiB -> 2 pages, not 8.
        ("0-1", 24683784, True, "isolcpus=1 nohz_full=1 hugepagesz=1G hugepages=2"),
        ("0-3", 256 * GIB_KB, True, "isolcpus=2,3 nohz_full=2,3 hugepagesz=1G hugepages=8"),
        ("0-3", 4 * GIB_KB, False, "isolcpus=2,3 nohz_full=2,3 hugepagesz=2M hugepages=256"),
        ("0,2,4,6", 16 * GIB_KB, False, "isolcpus=4,6 nohz_full=4,6 hugepagesz=2M hugepages=1024"),
    ],
)
def test_defaults_fit_the_machine_and_match_verify(tmp_path, cpus, mem_kb, one_gib, params):
    root = machine(tmp_path / "root", cpus, mem_kb, one_gib)
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    out = run(grub, sysroot=root)
    assert out.returncode == 0, out.stderr
    assert f"  {params}\n" in out.stdout
    assert "Recommended:" in out.stdout and "most memory stays free" in out.stdout  # it says why
    rec = recommend(root)
    assert params == (
        f"isolcpus={','.join(map(str, rec.cores))} nohz_full={','.join(map(str, rec.cores))} {rec.kernel_params}"
    )


def test_one_cpu_has_nothing_to_isolate_unless_told(tmp_path):
    root = machine(tmp_path / "root", "0", 2 * GIB_KB)
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    out = run(grub, sysroot=root)
    assert out.returncode == 2 and "nothing to isolate" in out.stdout + out.stderr
    assert recommend(root).cores == ()
    assert run(grub, "--cores", "0", sysroot=root).returncode == 0
