"""dev.py set-up: short output (one line per step, pip's log in a file) and pyprojects in the
current SPDX license form, so set-up prints no BuildBackendWarning (issue 17, item 17)."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECTS = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]


def load_dev():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", PYPROJECTS, ids=[p.parent.name for p in PYPROJECTS])
def test_pyproject_uses_an_spdx_license_and_a_setuptools_that_reads_it(path):
    data = tomllib.loads(path.read_text())
    assert data["project"]["license"] == "MIT"  # a string, not the deprecated {text = ...} table
    assert "setuptools>=77" in data["build-system"]["requires"]


def test_a_step_prints_one_line_and_keeps_the_output_in_the_log(tmp_path, monkeypatch, capsys):
    dev = load_dev()
    monkeypatch.setattr(dev, "LOG", tmp_path / "setup.log")
    with dev.LOG.open("w") as log:
        dev.step("saying hello", [sys.executable, "-c", "print('hello from pip')"], log)
    out = capsys.readouterr().out
    assert out.startswith("dev.py: saying hello ... done") and out.count("\n") == 1
    assert "hello from pip" not in out and "hello from pip" in dev.LOG.read_text()


def test_a_failed_step_shows_the_end_of_the_log_and_where_it_is(tmp_path, monkeypatch, capsys):
    dev = load_dev()
    monkeypatch.setattr(dev, "LOG", tmp_path / "setup.log")
    code = "import sys; print('\\n'.join(f'line {i}' for i in range(200))); sys.exit(3)"
    with dev.LOG.open("w") as log, pytest.raises(SystemExit) as done:
        dev.step("installing", [sys.executable, "-c", code], log)
    captured = capsys.readouterr()
    assert "installing ... failed" in captured.out
    assert "line 199" in captured.err and "line 100" not in captured.err  # the end, not everything
    assert str(dev.LOG) in str(done.value.code) and "exit 3" in str(done.value.code)
