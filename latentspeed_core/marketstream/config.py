"""Marketstream configuration (``config.yml``): the model and its resolution against plugins.

The top-level keys are validated here; each ``feeds`` entry is then validated by the
config model of the feed plugin its ``exchange`` names (and each ``sinks`` entry by the sink
plugin its ``type`` names), so an unknown or wrong key anywhere is reported as
``file: feeds[1].symbols: reason``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..config import ConfigError, FeedConfig, LogConfig, MetricsConfig, StrictModel, load_yaml, validate
from ..sink import SinkConfig
from .publisher import DEFAULT_SNDHWM

log = logging.getLogger(__name__)


class ZmqConfig(StrictModel):
    #: Bind address; loopback unless the user says otherwise.
    host: str = "127.0.0.1"
    #: Trades on ``port``, books on ``port + 1``.
    port: int = Field(5556, ge=1, le=65534)
    #: Rolling window (messages) for volatility and OFI.
    window_size: int = Field(20, ge=2)
    #: Levels per side in book messages and depth sums.
    depth_levels: int = Field(10, ge=1)
    #: Per-subscriber queue limit (messages, per port): bounds the memory a subscriber that
    #: stops reading can cost this process; beyond it messages are dropped and counted.
    sndhwm: int = Field(DEFAULT_SNDHWM, ge=1, le=100_000_000)
    #: A message meeting a full queue: ``isolate`` drops it for that subscriber only (drops
    #: counted as a lower bound), ``drop_all`` for every subscriber (drops counted exactly).
    slow_subscriber: Literal["isolate", "drop_all"] = "isolate"
    #: CPUs for ZeroMQ's I/O thread (which does the socket writes), e.g. ``[3]``; keep the
    #: event loop elsewhere (``taskset -c 2 marketstream ...``). Default: not pinned.
    io_cpus: list[int] | None = None


class MarketstreamConfig(StrictModel):
    zmq: ZmqConfig = Field(default_factory=ZmqConfig)
    log: LogConfig = Field(default_factory=lambda: LogConfig(file="marketstream.log"))
    #: Feed entries; keys besides ``exchange`` belong to that feed plugin's model.
    feeds: list[dict[str, Any]] = Field(min_length=1)
    #: Seconds between per-feed stats lines.
    stats_interval: float = Field(5.0, gt=0)
    #: Seconds to wait for the first message from any feed: a run that gets none stops with one
    #: line naming the feeds' URLs and exits 1 (so does one that ends without any).
    startup_timeout: float = Field(15.0, gt=0)
    #: Feature calculators to run, by registered name; ``null`` (default) runs all registered.
    features: list[str] | None = None
    #: Where else every published message goes (``[{type: redis, url: ...}]``); keys besides
    #: ``type`` belong to that sink plugin's model. ZeroMQ publishing is unaffected.
    sinks: list[dict[str, Any]] = Field(default_factory=list)
    #: Prometheus ``/metrics`` (``{port: 9100, host: 127.0.0.1}``); absent: off.
    metrics: MetricsConfig | None = None


@dataclass
class MarketstreamSetup:
    """A validated marketstream config with every feed entry validated by its plugin."""

    config: MarketstreamConfig
    file: str | None
    feeds: list[FeedConfig] = field(default_factory=list)
    feed_names: list[str] = field(default_factory=list)
    sinks: list[SinkConfig] = field(default_factory=list)


def feed_names(feeds: list[FeedConfig]) -> list[str]:
    """Feed i is named after its exchange if unique, else ``exchange#i`` (contracts.md)."""
    exchanges = [f.exchange for f in feeds]
    return [e if exchanges.count(e) == 1 else f"{e}#{i}" for i, e in enumerate(exchanges)]


def validate_feeds(
    entries: list[dict[str, Any]], registry, file: str | Path | None, prefix: str = "feeds"
) -> list[FeedConfig]:
    """Validate each entry with the model of the feed plugin its ``exchange`` names."""
    out = []
    installed = ", ".join(sorted(registry.feeds)) or "none"
    for i, entry in enumerate(entries):
        path = f"{prefix}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                file, path, f"expected a mapping with an 'exchange' key, got {type(entry).__name__}"
            )
        exchange = entry.get("exchange")
        if not isinstance(exchange, str) or not exchange:
            raise ConfigError(
                file, f"{path}.exchange", f"required key is missing (installed feeds: {installed})"
            )
        comp = registry.feeds.get(exchange.lower())
        if comp is None:
            raise ConfigError(
                file,
                f"{path}.exchange",
                f"unknown feed {exchange!r}; installed feeds: {installed}"
                " (is its plugin installed and selected with --plugins?)",
            )
        data = dict(entry)
        data["exchange"] = exchange.lower()
        out.append(validate(comp.config_model, data, file, prefix=path))
    return out


def validate_sinks(entries: list[dict[str, Any]], registry, file: str | Path | None) -> list[SinkConfig]:
    """Validate each entry with the model of the sink plugin its ``type`` names."""
    from ..known_plugins import install_hint

    out = []
    installed = ", ".join(sorted(registry.sinks)) or "none"
    hint = "" if "redis" in registry.sinks else f"; the redis sink: {install_hint('redis')}"
    for i, entry in enumerate(entries):
        path = f"sinks[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(file, path, f"expected a mapping with a 'type' key, got {type(entry).__name__}")
        kind = entry.get("type")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(file, f"{path}.type", f"required key is missing (installed sinks: {installed}{hint})")
        comp = registry.sinks.get(kind.lower())
        if comp is None:
            raise ConfigError(
                file,
                f"{path}.type",
                f"unknown sink {kind!r}; installed sinks: {installed}{hint}"
                " (is its plugin installed and selected with --plugins?)",
            )
        out.append(validate(comp.config_model, {**entry, "type": kind.lower()}, file, prefix=path))
    return out


def resolve(data: dict[str, Any], registry, file: str | Path | None = None) -> MarketstreamSetup:
    cfg = validate(MarketstreamConfig, data, file)
    setup = MarketstreamSetup(config=cfg, file=str(file) if file else None)
    setup.feeds = validate_feeds(cfg.feeds, registry, file)
    setup.sinks = validate_sinks(cfg.sinks, registry, file)
    for i, feed in enumerate(setup.feeds):
        if feed.replay and not Path(feed.replay).is_file():
            raise ConfigError(
                file,
                f"feeds[{i}].replay",
                f"capture file {feed.replay!r} not found (relative to {Path.cwd()})",
            )
    if cfg.log.file and Path(cfg.log.file).is_dir():  # (else a traceback once logging starts)
        raise ConfigError(file, "log.file", f"{cfg.log.file}: is a directory (give a file name)")
    setup.feed_names = feed_names(setup.feeds)
    seen: dict[tuple[str, str], int] = {}
    for i, feed in enumerate(setup.feeds):
        for sym in feed.symbols:
            j = seen.setdefault((feed.exchange, sym), i)
            if j != i:
                log.warning(
                    "%s: feeds[%d] and feeds[%d] both carry %s %s: they share one topic (seq, OFI, volatility)",
                    file,
                    j,
                    i,
                    feed.exchange.upper(),
                    sym,
                )
    for i, name in enumerate(cfg.features or []):
        if name not in registry.features:
            known = ", ".join(sorted(registry.features)) or "none"
            raise ConfigError(file, f"features[{i}]", f"unknown feature {name!r}; installed: {known}")
    return setup


def load_config(path: str | Path, registry) -> MarketstreamSetup:
    """Read and fully validate a marketstream config file (used by ``config validate`` too)."""
    return resolve(load_yaml(path), registry, path)


def build_sinks(configs: list[SinkConfig], registry) -> list:
    """Instantiate each sink with its plugin's factory (not started yet)."""
    return [registry.sinks[c.type].factory(c) for c in configs]


def build_feeds(setup_feeds: list[FeedConfig], names: list[str], registry) -> list:
    """Instantiate each feed with its plugin's factory and its contract name."""
    feeds = []
    for cfg, name in zip(setup_feeds, names, strict=True):
        feed = registry.feeds[cfg.exchange].factory(cfg)
        feed.name = name
        feeds.append(feed)
    return feeds
