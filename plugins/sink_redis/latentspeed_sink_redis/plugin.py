"""Hook implementations of the ``redis`` plugin (hooks only; the work lives in sibling modules)."""

from __future__ import annotations

from latentspeed_core import hookimpl
from latentspeed_core.components import Component

from .config import RedisSinkConfig, RedisSourceConfig
from .sink import RedisSink
from .source import RedisSource


@hookimpl
def register_sinks(register):
    # The engine's ``market_data.redis`` source rides along as a capability of the sink, so the
    # core finds it through the registry and never imports this plugin.
    source = Component("redis", RedisSourceConfig, RedisSource, "engine market data from Redis streams")
    register(
        Component(
            "redis",
            RedisSinkConfig,
            RedisSink,
            "every published message to a Redis stream per topic (XADD, MAXLEN ~)",
            extras={"engine_source": source},
        )
    )
