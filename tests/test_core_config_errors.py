"""A bad config is one clear line naming file, key path and reason, exit 2, no traceback."""

from __future__ import annotations

import pytest
from pydantic import Field

from latentspeed_core.config import ConfigError, FeedConfig, StrictModel, key_path, load, load_yaml, validate


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
