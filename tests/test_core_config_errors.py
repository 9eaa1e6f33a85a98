"""A bad config is one clear line naming file, key path and reason, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from latentspeed_core.config import (
    ConfigError,
    FeedConfig,
    StrictModel,
    key_path,
    load,
    load_yaml,
    validate,
    validate_leniently,
)


class Inner(StrictModel):
    port: int = 5556
    symbols: list[str] = Field(default_factory=list)


class Outer(StrictModel):
    zmq: Inner = Inner()
    feeds: list[Inner] = Field(default_factory=list)
    name: str


def test_key_path_formats_indices_like_the_user_writes_them():
    assert key_path(("feeds", 1, "symbols")) == "feeds[1].symbols"
    assert key_path(("symbols", 0), prefix="feeds[2]") == "feeds[2].symbols[0]"


def test_unknown_key_names_file_path_and_allowed_keys(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("name: x\nzmq: {prot: 1}\n")
    with pytest.raises(ConfigError) as err:
        load(Outer, f)
    assert err.value.path == "zmq.prot"
    assert "unknown key" in err.value.reason and "did you mean 'port'" in err.value.reason
    assert str(f) in str(err.value)


def test_wrong_type_inside_a_list_entry(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("name: x\nfeeds: [{port: 1}, {symbols: 5}]\n")
    with pytest.raises(ConfigError) as err:
        load(Outer, f)
    assert err.value.path == "feeds[1].symbols"


def test_missing_field():
    with pytest.raises(ConfigError) as err:
        validate(Outer, {}, "x.yml")
    assert err.value.path == "name" and "missing" in err.value.reason


def test_invalid_yaml_reports_line(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(f)
    assert "invalid YAML" in err.value.reason and "line" in err.value.reason


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "absent.yml")
    f = tmp_path / "list.yml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(f)


def test_feed_symbols_must_be_normalised():
    with pytest.raises(ConfigError) as err:
        validate(FeedConfig, {"exchange": "x", "symbols": ["BTCUSDT"]}, "f.yml", prefix="feeds[0]")
    assert err.value.path == "feeds[0].symbols"
    assert validate(FeedConfig, {"exchange": "x", "symbols": ["btc-usdt"]}).symbols == ["BTC-USDT"]


class Speeds(StrictModel):
    speed: Literal["max"] | float = "max"
    port: int = 1


def test_every_error_is_reported_not_just_the_first():
    with pytest.raises(ConfigError) as err:
        validate(Outer, {"zmq": {"prot": 1}, "feeds": [{"symbols": 5}]}, "c.yml")
    assert [p for p, _ in err.value.errors] == ["zmq.prot", "feeds[0].symbols", "name"]
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("c.yml: ") for line in lines)
    assert "more error" not in str(err.value)


def test_union_alternatives_are_one_error_at_the_key_the_user_wrote():
    with pytest.raises(ConfigError) as err:
        validate(Speeds, {"speed": "fast", "port": "x"}, "c.yml", prefix="feeds[0]")
    assert [p for p, _ in err.value.errors] == ["feeds[0].speed", "feeds[0].port"]
    assert "'max' or a valid number" in err.value.errors[0][1]


def test_engine_config_reports_every_section_and_the_risk_key_as_written(tmp_path, run_cli):
    """``max_order_qty: -1`` is reported as ``risk.max_order_qty``, not ``risk.max_order_qty.limit``."""
    text = (Path(__file__).resolve().parent.parent / "config" / "trading_config.yml").read_text()
    text = text.replace("max_order_qty: 1.0", "max_order_qty: -1").replace(
        "name: market_maker", "name: market_makr"
    )
    # and a key the engine itself refuses: the plugins' sections are still checked (issue 17, item 14)
    text += "\nfeez: {maker_bps: 1}\n"
    f = tmp_path / "engine.yml"
    f.write_text(text)
    res = run_cli("config", "validate", str(f))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert any(f"{f}: strategies[0].name: unknown strategy 'market_makr'" in x for x in lines), lines
    assert any(f"{f}: risk.max_order_qty: " in x and "greater than 0" in x for x in lines), lines
    assert any(f"{f}: feez: unknown key" in x for x in lines) and len(lines) == 3, lines
    assert ".limit" not in res.stderr and "strategie " not in res.stderr
    assert all(x.startswith("latentspeed config: error: ") for x in lines)


def test_registry_names_the_kind_in_good_english():
    from latentspeed_core.plugins import PluginError, load_registry

    reg = load_registry([])
    for kind, word in (("strategies", "strategy"), ("risk_checks", "risk check"), ("features", "feature")):
        with pytest.raises(PluginError, match=f"unknown {word} 'nope'"):
            reg.get(kind, "nope")


def test_leniently_validated_leaves_out_what_it_refused_and_keeps_the_error():
    cfg, err = validate_leniently(Outer, {"zmq": {"prot": 1}, "name": "n"}, "c.yml")
    assert cfg.name == "n" and [p for p, _ in err.errors] == ["zmq.prot"]
    assert validate_leniently(Outer, {"name": "n"}, "c.yml")[1] is None
    with pytest.raises(ConfigError) as raised:  # a required key missing: nothing to leave out
        validate_leniently(Outer, {"zmq": {"prot": 1}}, "c.yml")
    assert [p for p, _ in raised.value.errors] == ["zmq.prot", "name"]
