"""Plugin discovery, selection and the registry's refusal of duplicate names."""

from __future__ import annotations

import json
import types

import pytest
from pydantic import BaseModel

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.plugins import PluginError, installed_entry_points, load_registry

ALL = {"dydx", "bybit", "binance", "mock", "examples"}


def test_all_five_plugins_are_discovered_through_entry_points():
    assert ALL <= set(installed_entry_points())
    reg = load_registry()
    assert ALL <= {p.name for p in reg.plugins}


def test_selection_loads_only_the_named_plugins():
    reg = load_registry("mock")
    assert {p.name for p in reg.plugins} == {"core", "mock"}


def test_env_var_selects_when_no_flag(monkeypatch):
    monkeypatch.setenv("LATENTSPEED_PLUGINS", "bybit")
    assert {p.name for p in load_registry().plugins} == {"core", "bybit"}
    # the flag wins over the environment
    assert {p.name for p in load_registry("dydx").plugins} == {"core", "dydx"}


def test_unknown_plugin_is_a_clear_error_listing_installed():
    with pytest.raises(PluginError) as err:
        load_registry("nosuch,mock")
    msg = str(err.value)
    assert "nosuch" in msg and "installed:" in msg and "bybit" in msg


def _plugin(name: str, feed_name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    class Cfg(BaseModel):
        pass

    @hookimpl
    def register_feeds(register):
        register(Component(feed_name, Cfg, lambda cfg: None))

    mod.register_feeds = register_feeds
    return mod


def test_duplicate_component_names_are_refused_naming_both_plugins():
    with pytest.raises(PluginError) as err:
        load_registry("", extra=[_plugin("first", "dup"), _plugin("second", "dup")])
    assert "first" in str(err.value) and "second" in str(err.value)


def test_registry_lookup_error_lists_known_components():
    reg = load_registry("", extra=[_plugin("p", "alpha")])
    assert reg.get("feeds", "alpha").plugin == "p"
    with pytest.raises(PluginError, match="alpha"):
        reg.get("feeds", "beta")


def test_core_registers_builtin_commands():
    reg = load_registry("")
    assert {"run", "plugins", "config", "marketstream", "engine"} <= set(reg.commands)


def test_plugins_command_json_lists_every_plugin(run_cli):
    res = run_cli("plugins", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    names = {p["name"] for p in data}
    assert ALL <= names
    for p in data:
        assert {"name", "distribution", "version", "hooks", "components"} <= set(p)


def test_cli_unknown_plugin_exit_2_without_traceback(run_cli):
    res = run_cli("plugins", "--plugins", "nosuch")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "installed:" in res.stderr


def test_version_and_help(run_cli):
    assert run_cli("--version").stdout.startswith("latentspeed ")
    res = run_cli("--help")
    assert res.returncode == 0 and "plugins" in res.stdout


def test_plugin_subcommands_appear_in_help_only_when_their_plugin_loads(run_cli):
    assert "mock-exchange" in run_cli("--help").stdout
    assert "[plugin: mock]" in run_cli("--help").stdout
    assert "mock-exchange" not in run_cli("--plugins", "bybit", "--help").stdout
    sub = run_cli("mock-exchange", "--help")
    assert sub.returncode == 0 and "--fill-prob" in sub.stdout and "--tick-rate" in sub.stdout


def test_register_hooks_honour_tryfirst_and_trylast_and_refuse_wrappers():
    """Issue 17: registration hooks called directly would silently ignore pluggy's markers."""
    import pytest

    from latentspeed_core import hookimpl
    from latentspeed_core.components import Component
    from latentspeed_core.config import StrictModel
    from latentspeed_core.plugins import PluginError, load_registry

    calls = []

    def plugin(name, **marks):
        @hookimpl(**marks)
        def register_strategies(register):
            calls.append(name)
            register(Component(f"s_{name}", StrictModel, lambda cfg: None))

        return type(name, (), {"register_strategies": staticmethod(register_strategies), "__name__": name})

    reg = load_registry([], extra=[plugin("late", trylast=True), plugin("plain"), plugin("early", tryfirst=True)])
    mine = [c for c in calls if c in ("late", "plain", "early")]
    assert mine == ["early", "plain", "late"]
    assert reg.strategies["s_early"].plugin == "early" and reg.strategies["s_late"].plugin == "late"

    class Wrapped:
        @staticmethod
        @hookimpl(hookwrapper=True)
        def register_strategies(register):
            yield

    with pytest.raises(PluginError, match="'Wrapped': register_strategies cannot be a hookwrapper"):
        load_registry([], extra=[Wrapped])
