"""Every command, nested ones too, takes ``--plugins`` and ``--log-level`` before or after it; a
command whose plugin is missing or not selected says which plugin and how to get it (issue 17)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from latentspeed_core import cli
from latentspeed_core.plugins import installed_entry_points, load_registry

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = load_registry()
PARSER = cli.build_parser(REGISTRY)


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple]:
    """Every runnable (sub)command as (words, its parser): ``config validate``, not ``config``."""
    out = []
    for sub_action in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
        for name, sub in sub_action.choices.items():
            out += command_paths(sub, (*prefix, name))
    return out or [(prefix, parser)]


PATHS = [p for p in command_paths(PARSER) if p[0]]


def filler(parser: argparse.ArgumentParser) -> list[str]:
    """Values for the required arguments, so that parsing gets as far as the common options."""
    args: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or not action.required:
            continue
        value = str(next(iter(action.choices))) if action.choices else "1"
        args += [action.option_strings[0], value] if action.option_strings else [value]
    return args


def test_every_registered_command_is_covered():
    assert {words[0] for words, _ in PATHS} == set(REGISTRY.commands)
    assert ("config", "validate") in {words for words, _ in PATHS}


@pytest.mark.parametrize(("words", "parser"), PATHS, ids=[" ".join(w) for w, _ in PATHS])
def test_common_options_after_any_command(words, parser):
    fill = filler(parser)
    after = PARSER.parse_args([*words, *fill, "--plugins", "mock,examples", "--log-level", "DEBUG"])
    assert (after.plugins, after.log_level) == ("mock,examples", "debug")
    # Given before the command, a subcommand's own (absent) options must not erase them.
    before = PARSER.parse_args(["--plugins", "mock", "--log-level", "warning", *words, *fill])
    assert (before.plugins, before.log_level) == ("mock", "warning")
    plain = PARSER.parse_args([*words, *fill])
    assert (plain.plugins, plain.log_level) == (None, None)


@pytest.mark.parametrize("words", [w for w, _ in PATHS], ids=[" ".join(w) for w, _ in PATHS])
def test_help_of_every_command_lists_the_common_options(words, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*words, "--plugins", "mock,examples", "--log-level", "debug", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--plugins NAMES" in out and "--log-level" in out


def test_config_validate_with_common_options_for_real(run_cli):
    cfg = str(ROOT / "config" / "trading_config.yml")
    for args in (
        ("config", "validate", "--plugins", "mock,examples", cfg),
        ("config", "validate", "--log-level", "debug", cfg),
        ("config", "validate", cfg, "--plugins=mock,examples", "--log-level=error"),
        ("--log-level", "debug", "config", "validate", cfg),
    ):
        res = run_cli(*args)
        assert res.returncode == 0, (args, res.stderr)
        assert "valid engine config" in res.stdout
    # the selection is applied: without the examples plugin the market maker is not there, and the
    # error names the installed plugin that has it and the selection that would work
    res = run_cli("config", "validate", "--plugins", "mock", cfg)
    assert res.returncode == 2 and "strategy 'market_maker' is in plugin 'examples'" in res.stderr
    assert "--plugins mock,examples" in res.stderr and "installed: none" not in res.stderr


def test_a_deselected_plugin_command_says_how_to_select_it(run_cli):
    env = {**os.environ, "LATENTSPEED_PLUGINS": "examples"}
    res = run_cli("mock-exchange", "--port", "0", env=env)
    assert res.returncode == 2 and "invalid choice" not in res.stderr
    assert "plugin 'mock'" in res.stderr and "installed but not selected" in res.stderr
    assert "--plugins examples,mock" in res.stderr
    res = run_cli("--plugins", "dydx", "mock-exchange")
    assert res.returncode == 2 and "--plugins dydx,mock" in res.stderr


def test_a_missing_plugin_command_says_what_to_install(monkeypatch, capsys):
    without_mock = {k: v for k, v in installed_entry_points().items() if k != "mock"}
    monkeypatch.setattr("latentspeed_core.plugins.installed_entry_points", lambda: without_mock)
    monkeypatch.setattr("latentspeed_core.cli.installed_entry_points", lambda: without_mock)
    monkeypatch.delenv("LATENTSPEED_PLUGINS", raising=False)
    assert cli.main(["mock-exchange", "--port", "9000"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'mock'" in err and "not installed" in err
    assert "pip install latentspeed-mock-exchange" in err and "invalid choice" not in err


def test_an_unknown_command_still_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["frobnicate"])
    assert done.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["engine", "--duration", "-1"], "argument --duration: -1 is not above 0"),
        (["run", "--duration", "0"], "argument --duration: 0 is not above 0"),
        (["record", "c.yml", "--out", "x.gz", "--duration", "nan"], "argument --duration: nan is not above 0"),
        (["marketstream", "c.yml", "--duration", "soon"], "argument --duration: 'soon' is not a number"),
        (["marketstream", "c.yml", "--wait-subscribers", "-3"], "-3 is out of range (>= 0)"),
        (["tap", "--count", "0"], "argument --count: 0 is out of range (>= 1)"),
        (["export", "c.gz", "--out", "d", "--depth-levels", "0"], "0 is out of range (>= 1)"),
        (["export", "c.gz", "--out", "d", "--window-size", "1"], "1 is out of range (>= 2)"),
    ],
)
def test_a_number_a_command_cannot_use_is_refused_before_it_starts(argv, says, capsys):
    """A negative --duration used to start the run and end it at once with 'no market data'."""
    with pytest.raises(SystemExit) as exc:
        PARSER.parse_args(argv)
    assert exc.value.code == 2 and says in capsys.readouterr().err
