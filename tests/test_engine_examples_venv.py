"""The out-of-tree strategy plugin (examples/) as a user installs it: wheels into a brand-new venv.

Builds the wheels of the core, the mock exchange and the example package, installs them
(dependencies from the package index) into a fresh virtual environment, then runs the
example strategy with that environment's ``latentspeed run`` against the embedded mock
exchange, and runs the example's own tests there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from latentspeed_core.testing import free_port

pytestmark = pytest.mark.needs_registry  # installs dependencies from the package index

ROOT = Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".venv", "*.pyc")


def _run(*cmd, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, (
        f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _copy(src: Path, dst: Path, package: str, tests: bool = False) -> Path:
    """Copy what the build needs, so building never writes into the shared working tree."""
    dst.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(src / name, dst / name)
    shutil.copytree(src / package, dst / package, ignore=_IGNORE)
    if tests:
        shutil.copytree(src / "tests", dst / "tests", ignore=_IGNORE)
    return dst


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("examples_venv")
    wheels = tmp / "wheels"
    example = _copy(ROOT / "examples", tmp / "src" / "example", "latentspeed_example_momentum", tests=True)
    sources = [
        _copy(ROOT, tmp / "src" / "core", "latentspeed_core"),
        _copy(ROOT / "plugins" / "mock_exchange", tmp / "src" / "mock", "latentspeed_mock_exchange"),
        example,
    ]
    for src in sources:
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src)
    env_dir = tmp / "venv"
    _run(sys.executable, "-m", "venv", env_dir)
    _run(
        env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", *sorted(wheels.glob("*.whl")), "pytest"
    )
    return env_dir, example


def test_example_plugin_is_discovered(venv):
    env_dir, _ = venv
    out = _run(env_dir / "bin" / "latentspeed", "plugins", "--json").stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert set(plugins) == {"core", "mock", "momentum"}
    assert plugins["momentum"]["distribution"] == "latentspeed-example-momentum"
    assert plugins["momentum"]["components"] == {"strategies": ["momentum"]}


def test_example_strategy_trades_on_the_mock_exchange(venv, tmp_path):
    env_dir, _ = venv
    cfg = yaml.safe_load((ROOT / "examples" / "momentum.yml").read_text())
    port = free_port()
    cfg["market_data"]["feeds"][0]["port"] = cfg["venue"]["port"] = port
    cfg["strategies"][0]["params"]["threshold_bps"] = 0.5
    path = tmp_path / "momentum.yml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _run(
        env_dir / "bin" / "latentspeed", "run", "--config", path, "--duration", "4", timeout=60, cwd=tmp_path
    )
    m = re.search(r"SUMMARY .*orders=(\d+) fills=(\d+)", proc.stdout)
    assert m and int(m.group(1)) > 0, proc.stdout + proc.stderr[-2000:]


def test_example_own_tests_pass_in_the_venv(venv):
    env_dir, example = venv
    _run(
        env_dir / "bin" / "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        example / "tests",
        cwd=example,
    )
