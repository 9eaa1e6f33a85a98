"""The redis plugin's config: sink entries and the engine's market_data.redis, validated with key paths."""

from __future__ import annotations

import logging

import pytest
from latentspeed_sink_redis.config import RedisSinkConfig, RedisSourceConfig
from pydantic import ValidationError

from latentspeed_core.config import ConfigError
from latentspeed_core.engine.config import resolve as resolve_engine
from latentspeed_core.marketstream.config import resolve as resolve_marketstream
from latentspeed_core.plugins import load_registry

REG = load_registry(["redis", "mock", "examples"])


def ms_config(*sinks: dict) -> dict:
    return {"feeds": [{"exchange": "mock", "symbols": ["BTC-USD"]}], "sinks": list(sinks)}


def engine_config(redis: dict) -> dict:
    return {
        "market_data": {"redis": redis},
        "venue": {"exchange": "mock"},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"]}],
    }


def test_sink_entry_defaults_and_keys():
    setup = resolve_marketstream(ms_config({"type": "redis", "url": "redis://10.0.0.5:6380/2"}), REG)
    (sink,) = setup.sinks
    assert isinstance(sink, RedisSinkConfig)
    assert (sink.url, sink.maxlen, sink.batch, sink.buffer) == ("redis://10.0.0.5:6380/2", 100_000, 500, 100_000)
    setup = resolve_marketstream(ms_config({"type": "REDIS", "maxlen": 10, "batch": 7, "buffer": 30}), REG)
    assert (setup.sinks[0].type, setup.sinks[0].maxlen, setup.sinks[0].batch, setup.sinks[0].buffer) == (
        "redis", 10, 7, 30)  # fmt: skip


def test_a_password_in_the_url_becomes_a_secret_and_leaves_the_url(caplog):
    cfg = RedisSinkConfig(type="redis", url="redis://trader:s3cret@db.internal:6379/1")
    assert cfg.url == "redis://trader@db.internal:6379/1"
    assert cfg.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())
    assert cfg.client_kwargs()["password"] == "s3cret"
    given = RedisSinkConfig(type="redis", url="redis://db:6379/0", password="pw")
    assert "SecretStr('**********')" in repr(given) and given.password.get_secret_value() == "pw"
    with pytest.raises(ValidationError, match="password is given twice"):
        RedisSinkConfig(type="redis", url="redis://:a@db:6379/0", password="b")


@pytest.mark.parametrize(
    "entry, path, reason",
    [
        ({"type": "redis", "url": "http://x:1/0"}, "sinks[0].url", "expected redis://host:port/db"),
        ({"type": "redis", "maxlen": 0}, "sinks[0].maxlen", "greater than or equal to 1"),
        ({"type": "redis", "colour": "red"}, "sinks[0].colour", "unknown key"),
        ({"type": "kafka"}, "sinks[0].type", "unknown sink 'kafka'; installed sinks: redis"),
        ({"url": "redis://x:1/0"}, "sinks[0].type", "required key is missing"),
    ],
)
def test_bad_sink_entries_are_reported_with_their_key_path(entry, path, reason):
    with pytest.raises(ConfigError) as err:
        resolve_marketstream(ms_config(entry), REG, "ms.yml")
    assert f"ms.yml: {path}: " in str(err.value) and reason in str(err.value)


def test_engine_redis_source_is_validated_by_the_plugin_model():
    setup = resolve_engine(engine_config({"url": "redis://:pw@h:1/0", "streams": ["MOCK-preprocessed_book-BTC-USD"],
                                          "group": "desk-a"}), REG)  # fmt: skip
    component, cfg = setup.plugin_source
    assert isinstance(cfg, RedisSourceConfig) and component.config_model is RedisSourceConfig
    assert (cfg.url, cfg.group, cfg.consumer, cfg.start) == ("redis://h:1/0", "desk-a", "engine", "new")
    with pytest.raises(ConfigError) as err:
        resolve_engine(engine_config({"streams": ["X"]}), REG, "e.yml")
    assert "e.yml: market_data.redis.group: " in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve_engine(engine_config({"streams": [], "group": "g"}), REG, "e.yml")
    assert "market_data.redis.streams" in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve_engine(engine_config({"streams": ["X"], "group": "g", "block_ms": 9000}), REG, "e.yml")
    assert "block_ms (9000) must be below timeout (5 s)" in str(err.value)


def test_one_market_data_source_only():
    data = engine_config({"streams": ["X"], "group": "g"})
    data["market_data"]["zmq"] = {"port": 5556}
    with pytest.raises(ConfigError) as err:
        resolve_engine(data, REG, "e.yml")
    assert "give one market-data source: feeds (in-process), zmq (a marketstream), redis" in str(err.value)


def test_without_the_plugin_the_errors_say_how_to_install_it(caplog):
    caplog.set_level(logging.WARNING)
    reg = load_registry(["mock", "examples"])  # redis installed but not selected
    with pytest.raises(ConfigError) as err:
        resolve_marketstream(ms_config({"type": "redis"}), reg, "ms.yml")
    msg = str(err.value)
    assert "sinks[0].type: unknown sink 'redis'; installed sinks: none" in msg
    assert "pip install latentspeed-sink-redis" in msg and "plugins/sink_redis" in msg
    with pytest.raises(ConfigError) as err:
        resolve_engine(engine_config({"streams": ["X"], "group": "g"}), reg, "e.yml")
    msg = str(err.value)
    assert "e.yml: market_data.redis: needs plugin 'redis', which is not loaded" in msg
    assert "pip install latentspeed-sink-redis" in msg and "--plugins" in msg
