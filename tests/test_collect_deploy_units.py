"""deploy/systemd units: as in the production plan (restart always; trading requires marketstream)."""

from __future__ import annotations

import configparser
from pathlib import Path

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((UNITS / name).read_text())
    return cp


def test_both_services_restart_always_and_stop_gracefully():
    for name, exe in (
        ("latentspeed-marketstream.service", "marketstream"),
        ("latentspeed-trading.service", "trading_engine_server"),
    ):
        u = unit(name)
        assert u["Service"]["Restart"] == "always", name
        assert u["Service"]["KillSignal"] == "SIGINT", name
        assert Path(u["Service"]["ExecStart"].split()[0]).name == exe, name
        assert u["Install"]["WantedBy"] == "multi-user.target", name


def test_trading_requires_marketstream_and_is_pinned():
    u = unit("latentspeed-trading.service")
    assert u["Unit"]["Requires"] == "latentspeed-marketstream.service"
    assert "latentspeed-marketstream.service" in u["Unit"]["After"].split()
    assert "--config config/trading_config.yml --cpu-affinity 6,7" in u["Service"]["ExecStart"]


def test_the_seed_named_collect_wrapper_passes_the_duration_first():
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "collect_data.sh"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    out = subprocess.run(
        ["bash", "-x", str(script), "42", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "--network-core" in out.stdout and "--strategy-core" in out.stdout
    assert "collect --duration 42 --help" in out.stderr  # bash -x shows the command it ran
