"""scripts/setup_kernel.sh: shows the change, edits nothing without --apply, backs up before editing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup_kernel.sh"
GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash isolcpus=2,3 hugepages=4"\nGRUB_CMDLINE_LINUX=""\n'
SEED_PARAMS = "isolcpus=6,7 nohz_full=6,7 hugepagesz=1G hugepages=8"


def run(grub: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRUB_FILE": str(grub)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30)


def backups(grub: Path) -> list[Path]:
    return sorted(grub.parent.glob(grub.name + ".bak.*"))


def test_dry_run_shows_the_seed_parameters_and_changes_nothing(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    out = run(grub)
    assert out.returncode == 0, out.stderr
    assert SEED_PARAMS in out.stdout
    assert f'+ GRUB_CMDLINE_LINUX_DEFAULT="quiet splash {SEED_PARAMS}"' in out.stdout
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
    assert grub.read_text() == f'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="{SEED_PARAMS}"\n'


def test_bad_arguments_and_missing_file_are_errors(tmp_path):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    assert run(grub, "--cores", "6;reboot").returncode == 2
    assert run(grub, "--frobnicate").returncode == 2
    missing = run(tmp_path / "nope", "--apply")
    assert missing.returncode == 1 and "cannot apply" in missing.stderr
    assert grub.read_text() == GRUB
