"""`latentspeed verify`: every check reports a status here, and the checks judge a fake /proc+/sys right."""

from __future__ import annotations

import json
from pathlib import Path

from latentspeed_core.datacollect import checks
from latentspeed_core.datacollect.checks import FAIL, PASS, WARN

CHECK_NAMES = [
    "isolcpus",
    "nohz_full",
    "hugepages",
    "irq_affinity",
    "cpu_governor",
    "smt",
    "latentspeed_command",
    "plugins",
    "ports",
]


def test_verify_json_reports_every_check_with_a_status_on_this_machine(run_cli):
    out = run_cli("verify", "--json")
    report = json.loads(out.stdout)
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    for c in report["checks"]:
        assert c["status"] in (PASS, WARN, FAIL), c
        assert c["observed"], c
        if c["status"] != PASS:
            assert c["advice"], c  # a WARN or FAIL always says what to do
    assert report["ok"] == (report["counts"]["FAIL"] == 0)
    assert out.returncode == (0 if report["ok"] else 1), out.stderr


def test_verify_plain_output_has_one_line_per_check(run_cli):
    out = run_cli("verify")
    lines = out.stdout.splitlines()
    for name in CHECK_NAMES:
        assert any(f"  {name} " in line for line in lines), name
    assert lines[-1].endswith("fail")


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def tuned_host(root: Path, nic_affinity: str = "0-1", governor: str = "performance", smt: str = "0") -> Path:
    """A 4-core host with cores 2,3 isolated and tickless, 8 × 1 GiB pages and one NIC (eth0, 2 queues)."""
    write(
        root,
        "proc/cmdline",
        "BOOT_IMAGE=/vmlinuz quiet isolcpus=2,3 nohz_full=2,3 hugepagesz=1G hugepages=8\n",
    )
    write(root, "sys/devices/system/cpu/online", "0-3\n")
    write(root, "sys/devices/system/cpu/isolated", "2-3\n")
    write(root, "sys/devices/system/cpu/nohz_full", "2-3\n")
    write(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "8\n")
    write(root, "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
    write(root, "sys/devices/system/cpu/smt/active", smt + "\n")
    write(root, "sys/devices/system/cpu/smt/control", "on\n" if smt == "1" else "off\n")
    for cpu in range(4):
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", governor + "\n")
        # SMT pairs (0,2) and (1,3): an isolated core's sibling is not isolated.
        write(
            root,
            f"sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list",
            f"{cpu % 2},{cpu % 2 + 2}\n",
        )
    write(
        root,
        "proc/interrupts",
        "           CPU0       CPU1       CPU2       CPU3\n"
        " 24:          1          0          0          0  IO-APIC   5-edge      ACPI:Ged\n"
        " 40:          5          0          0          0  PCI-MSIX-0000:00:03.0   0-edge      eth0-config\n"
        " 41:       1978          0          0          0  PCI-MSIX-0000:00:03.0   1-edge      eth0-TxRx-0\n"
        " 42:          0       3812          0          0  PCI-MSIX-0000:00:03.0   2-edge      eth0-TxRx-1\n"
        "LOC:      14719      19008        100        100   Local timer interrupts\n",
    )
    for irq in (24, 40):
        write(root, f"proc/irq/{irq}/smp_affinity_list", "0-3\n")
    for irq in (41, 42):
        write(root, f"proc/irq/{irq}/smp_affinity_list", nic_affinity + "\n")
    (root / "sys/devices/pci0000:00/0000:00:03.0").mkdir(parents=True)
    (root / "sys/class/net/eth0").mkdir(parents=True)
    (root / "sys/class/net/eth0/device").symlink_to(root / "sys/devices/pci0000:00/0000:00:03.0")
    (root / "sys/class/net/lo").mkdir(parents=True)
    write(
        root,
        "proc/net/tcp",
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:2328 00000000:0000 0A 00000000:00000000\n"  # 127.0.0.1:9000 LISTEN
        "   1: 0100007F:15B4 0100007F:9C40 01 00000000:00000000\n",
    )  # 5556 ESTABLISHED, not listening
    return root


def by_name(root: Path, cores=(2, 3), ports=(9000, 5556, 5557)) -> dict:
    return {c.name: c for c in checks.run_checks(cores=set(cores), ports=ports, root=root)}


def test_a_tuned_host_passes_the_kernel_checks(tmp_path):
    got = by_name(tuned_host(tmp_path))
    for name in ("isolcpus", "nohz_full", "hugepages", "irq_affinity", "cpu_governor", "smt"):
        assert got[name].status == PASS, got[name]
    assert got["isolcpus"].observed == "isolated 2-3"
    assert got["hugepages"].observed.startswith("8 × 1024 MiB")
    assert "IRQ 41, 42 on 0-1" in got["irq_affinity"].observed  # the -config vector is not a queue


def test_nic_queue_irqs_on_isolated_cores_fail_and_say_how_to_move_them(tmp_path):
    got = by_name(tuned_host(tmp_path, nic_affinity="0-3"))
    assert got["irq_affinity"].status == FAIL
    assert "41, 42" in got["irq_affinity"].observed
    assert "echo 0-1 > /proc/irq/N/smp_affinity_list" in got["irq_affinity"].advice


def test_untuned_settings_warn(tmp_path):
    got = by_name(tuned_host(tmp_path, governor="powersave", smt="1"), cores={6, 7})
    assert got["cpu_governor"].status == WARN and "powersave" in got["cpu_governor"].observed
    assert got["smt"].status == WARN  # siblings 0 and 1 of the isolated cores 2, 3 are not isolated
    assert got["isolcpus"].status == WARN and "wanted 6-7" in got["isolcpus"].observed
    assert got["ports"].status == WARN and got["ports"].observed.startswith("in use: 9000")


def test_an_empty_tree_warns_without_crashing(tmp_path):
    got = by_name(tmp_path)
    for name in ("isolcpus", "nohz_full", "hugepages", "irq_affinity", "cpu_governor", "smt"):
        assert got[name].status == WARN, got[name]
    assert got["ports"].status == PASS


def test_the_shell_wrapper_runs_verify():
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "verify_system.sh"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(script), "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert [c["name"] for c in json.loads(out.stdout)["checks"]] == CHECK_NAMES


def test_the_recommendation_fits_a_small_machine_and_says_why(tmp_path):
    """The issue's 2-CPU, 24 GiB VM: isolate CPU 1 (not 6,7) and reserve 2 × 1 GiB (not 8)."""
    write(tmp_path, "sys/devices/system/cpu/online", "0-1\n")
    write(tmp_path, "proc/meminfo", "MemTotal:       24683784 kB\n")
    (tmp_path / "sys/kernel/mm/hugepages/hugepages-1048576kB").mkdir(parents=True)
    rec = checks.recommend(tmp_path)
    assert rec.cores == (1,) and (rec.hugepagesz, rec.hugepages) == ("1G", 2)
    got = {c.name: c for c in checks.run_checks(root=tmp_path)}  # no --cores: the recommended ones
    assert "--cores 1 " in got["isolcpus"].advice and "the last 1 of 2 CPUs" in got["isolcpus"].advice
    assert "hugepagesz=1G hugepages=2" in got["hugepages"].advice
    assert "an eighth of 24 GiB RAM" in got["hugepages"].advice
    assert "6,7" not in got["isolcpus"].advice + got["nohz_full"].advice


def test_verify_defaults_to_this_machines_last_cores(run_cli):
    out = run_cli("verify", "--json")
    report = json.loads(out.stdout)
    iso = next(c for c in report["checks"] if c["name"] == "isolcpus")
    want = ",".join(map(str, checks.recommend().cores))
    if iso["status"] != PASS and want:
        assert f"--cores {want} " in iso["advice"], iso
