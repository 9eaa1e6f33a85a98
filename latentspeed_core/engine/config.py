"""Engine configuration (``trading_config.yml``): the model and its resolution against plugins.

The top-level model validates the engine's own keys. Sections owned by plugins (each feed
entry, the venue, each strategy's ``params``, each risk check) are validated afterwards by
the model the plugin registered, so an unknown key anywhere is reported with its full path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from ..config import (
    ConfigError,
    FeedConfig,
    LogConfig,
    MetricsConfig,
    StrictModel,
    load_yaml,
    validate,
    validate_leniently,
)


class ZmqSourceConfig(StrictModel):
    """Consume a separate ``latentspeed marketstream`` process instead of in-process feeds."""

    host: str = "127.0.0.1"
    port: int = Field(5556, ge=1, le=65535)
    #: Second port, for a marketstream that publishes books on their own port (its default: 5557).
    books_port: int | None = Field(None, ge=1, le=65535)
    #: Topic prefixes to subscribe to; empty means everything the publisher sends.
    topics: list[str] = Field(default_factory=list)


def _zmq_feeds(md: Any) -> list[dict]:
    """The ``{exchange: zmq, ...}`` entries of a raw ``market_data`` section's ``feeds``."""
    feeds = md.get("feeds") if isinstance(md, dict) else None
    if not isinstance(feeds, list):
        return []
    return [f for f in feeds if isinstance(f, dict) and str(f.get("exchange", "")).lower() == "zmq"]


class MarketDataConfig(StrictModel):
    window_size: int = Field(20, ge=1)
    depth_levels: int = Field(10, ge=1)
    #: In-process feeds: the same entries as a marketstream config's ``feeds``.
    feeds: list[dict[str, Any]] = Field(default_factory=list)
    zmq: ZmqSourceConfig | None = None
    #: Redis Streams written by a marketstream's redis sink (``{url, streams, group}``), read with
    #: a consumer group: validated by the ``redis`` plugin's model (``latentspeed-sink-redis``).
    redis: dict[str, Any] | None = None
    #: Books and trades from the venue's own order-entry connection, for venues that carry
    #: market data (the mock exchange does): one socket, so no second wake-up per tick.
    from_venue: bool = False
    #: ``from_venue``: when one read holds several snapshots of a symbol, strategies are called
    #: on the last one only (the others still update the book and the features).
    conflate: bool = True
    #: Feature calculators to run (names as registered); ``None`` = all registered.
    features: list[str] | None = None
    #: Seconds to wait for the first market-data message (and the venue's connection): a run
    #: that gets neither stops with one line naming what never came, and exits non-zero.
    startup_timeout: float = Field(15.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _zmq_feed(cls, data: Any) -> Any:
        """``feeds: [{exchange: zmq, host, port, ...}]`` is ``zmq: {host, port, ...}``: a marketstream's
        messages, which issue 5 calls the engine's ``zmq`` feed. It is the whole source, so alone."""
        zmq = _zmq_feeds(data)
        if not zmq:
            return data
        feeds = data["feeds"]
        if len(feeds) > 1 or data.get("zmq") is not None:
            raise ValueError(
                "a zmq feed (a marketstream's messages) is the whole market-data source: give it alone"
            )
        return {**data, "feeds": [], "zmq": {k: v for k, v in zmq[0].items() if k != "exchange"}}

    @model_validator(mode="after")
    def _one_source(self):
        given = sum((bool(self.feeds), self.zmq is not None, self.redis is not None, self.from_venue))
        if given > 1:
            raise ValueError(
                "give one market-data source: feeds (in-process), zmq (a marketstream), redis (its"
                " Redis streams) or from_venue"
            )
        if not given:
            raise ValueError(
                "no market data: give feeds (in-process), zmq (a marketstream process), redis (a"
                " marketstream's Redis streams) or from_venue: true"
            )
        return self


class VenueSection(BaseModel):
    """``venue: {exchange: mock, ...}``; the keys besides ``exchange`` belong to the venue plugin."""

    model_config = {"extra": "allow", "frozen": True}
    exchange: str


class StrategyEntry(StrictModel):
    name: str
    symbols: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    #: Distinguishes two instances of one strategy in logs; defaults to ``name`` (``name#i`` if repeated).
    id: str | None = None

    @field_validator("symbols")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [sys.intern(s.upper()) for s in v]


class FeesConfig(StrictModel):
    """Fees in basis points of notional; negative is a rebate."""

    maker_bps: float = 0.0
    taker_bps: float = 0.0


class LatencyConfig(StrictModel):
    #: JSON-lines latency/stats/summary records (path relative to cwd); ``null`` disables.
    file: str | None = "latency.jsonl"


class EngineConfig(StrictModel):
    log: LogConfig = Field(default_factory=LogConfig)
    market_data: MarketDataConfig
    venue: VenueSection
    strategies: list[StrategyEntry] = Field(min_length=1)
    #: Risk checks by name (as registered); a scalar is shorthand for ``{limit: value}``.
    risk: dict[str, Any] = Field(default_factory=dict)
    fees: FeesConfig = Field(default_factory=FeesConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    stats_interval: float = Field(5.0, gt=0)
    #: How often strategies' ``on_timer`` runs, in seconds. At least 1 ms: the event loop's timers
    #: resolve no finer, and a backtest would tick a nanosecond timer a million times per record.
    timer_interval: float = Field(1.0, ge=0.001)
    cancel_on_exit: bool = True
    #: Seconds to wait for cancel confirmations at shutdown before reporting orders as unknown.
    shutdown_timeout: float = Field(3.0, ge=0)
    #: CPUs to pin the engine to (Linux), like ``--cpu-affinity``.
    cpu_affinity: list[int] | None = None
    #: Keep the event loop spinning instead of sleeping between messages: no wake-up latency and
    #: warm caches on the hot path, at the cost of one whole CPU (pin it: ``cpu_affinity``).
    busy_poll: bool = False
    #: Busy polling: rehearse the tick-to-trade path this often (µs) while waiting, on shadow
    #: state, so its code and data stay in the CPU caches (engine/rehearsal.py); 0: never.
    warm_interval_us: float = Field(100.0, ge=0)
    #: Sleeping (``busy_poll: false``): wake this long (ms, at most a quarter of the gap between
    #: ticks) before the next tick is expected (market data comes at a cadence) and spin,
    #: rehearsing, until it comes; 0: sleep until woken (engine/idle.py).
    warm_before_tick_ms: float = Field(2.0, ge=0)
    #: Collect garbage (generation 0 and up, as the collector would) just after a tick instead of
    #: on the tick that happens to cross the threshold; the automatic threshold is raised to catch
    #: up only if the engine never gets there.
    gc_when_idle: bool = True
    #: Where a run's files go: relative ``latency.file`` and ``log.file`` land in this directory
    #: (``{time}``: the UTC start, e.g. ``runs/engine-20261206T114500Z``), created when the first
    #: file is opened. ``.`` keeps the old behaviour (the current directory).
    output_dir: str = "runs/engine-{time}"
    #: Prometheus ``/metrics`` (``{port: 9100, host: 127.0.0.1}``); absent: off.
    metrics: MetricsConfig | None = None


@dataclass
class ResolvedStrategy:
    id: str
    name: str
    symbols: list[str]
    params: BaseModel
    component: Any


@dataclass
class EngineSetup:
    """A validated engine config with every plugin-owned section validated too."""

    config: EngineConfig
    file: str | None
    feeds: list[FeedConfig] = field(default_factory=list)
    feed_names: list[str] = field(default_factory=list)
    #: A market-data source a plugin provides (``market_data.redis``): its component, whose
    #: factory is ``factory(config, on_book, on_trade)``, and its validated config.
    plugin_source: tuple[Any, BaseModel] | None = None
    venue: BaseModel | None = None
    strategies: list[ResolvedStrategy] = field(default_factory=list)
    #: (name, component, validated config), in ascending priority.
    risk_checks: list[tuple[str, Any, BaseModel]] = field(default_factory=list)
    #: The run's files, resolved against ``output_dir`` (None: not written); see :func:`output_paths`.
    output_dir: Path | None = None
    latency_file: str | None = None
    log_file: str | None = None


def output_paths(cfg: EngineConfig, now: float | None = None) -> tuple[Path | None, str | None, str | None]:
    """``(directory, log file, latency file)`` of a run: relative files go under ``output_dir``.

    The directory is None when the run writes nothing there (both files off, or absolute)."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    out = Path(cfg.output_dir.replace("{time}", stamp))
    used = False

    def place(f: str | None) -> str | None:
        nonlocal used
        if f is None or Path(f).is_absolute():
            return f
        used = True
        return str(out / f)

    log_file, latency_file = place(cfg.log.file), place(cfg.latency.file)
    return (out if used else None), log_file, latency_file


def feed_names(feeds: list[FeedConfig]) -> list[str]:
    """Feed i is named after its exchange if unique, else ``exchange#i`` (contracts.md)."""
    exchanges = [f.exchange for f in feeds]
    return [e if exchanges.count(e) == 1 else f"{e}#{i}" for i, e in enumerate(exchanges)]


def resolve(data: dict[str, Any], registry, file: str | Path | None = None) -> EngineSetup:
    """Validate ``data`` (a parsed YAML mapping) against the engine model and every plugin model.

    Each plugin-owned section is checked even when an earlier one failed, so one run reports
    every problem (one :class:`ConfigError` holding them all).
    """
    # (a refused key of the engine's own sections does not stop the plugins' sections being checked)
    md = data.get("market_data") if isinstance(data, dict) else None
    # (a lone zmq feed's keys are reported where the user wrote them, not under the zmq section it becomes)
    zmq_feed = len(_zmq_feeds(md)) == 1 and len(md["feeds"]) == 1
    try:
        cfg, first = validate_leniently(EngineConfig, data, file)
    except ConfigError as exc:
        raise exc.renamed("market_data.zmq", "market_data.feeds[0]") if zmq_feed else exc from None
    if first is not None and zmq_feed:
        first = first.renamed("market_data.zmq", "market_data.feeds[0]")
    setup = EngineSetup(config=cfg, file=str(file) if file else None)
    setup.output_dir, setup.log_file, setup.latency_file = output_paths(cfg)
    from ..plugins import PluginError

    problems: list[ConfigError] = [first] if first is not None else []
    for key, out in (("latency.file", setup.latency_file), ("log.file", setup.log_file)):
        if out and Path(out).is_dir():  # (found when the run first writes: a traceback then)
            problems.append(ConfigError(file, key, f"{out}: is a directory (give a file name)"))

    def lookup(kind: str, name: str, path: str):
        try:
            return registry.get(kind, name)
        except PluginError as exc:
            raise ConfigError(file, path, str(exc)) from None

    def checked(fn, *args, **kwargs):
        """``fn(...)``, or ``None`` with its ConfigError kept for the final report."""
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            problems.append(exc)
            return None

    for i, entry in enumerate(cfg.market_data.feeds):
        path = f"market_data.feeds[{i}]"
        exchange = entry.get("exchange")
        if not isinstance(exchange, str):
            problems.append(ConfigError(file, f"{path}.exchange", "required key is missing"))
            continue
        comp = checked(lookup, "feeds", exchange.lower(), f"{path}.exchange")
        feed = comp and checked(validate, comp.config_model, entry, file, prefix=path)
        if feed is not None:
            setup.feeds.append(feed)
    setup.feed_names = feed_names(setup.feeds)
    if cfg.market_data.redis is not None:
        setup.plugin_source = checked(_plugin_source, registry, "redis", cfg.market_data.redis, file)

    venue_data = cfg.venue.model_dump()
    comp = checked(lookup, "venues", cfg.venue.exchange.lower(), "venue.exchange")
    if comp is not None:
        if "exchange" not in comp.config_model.model_fields:
            venue_data.pop("exchange", None)
        setup.venue = checked(validate, comp.config_model, venue_data, file, prefix="venue")
    # The venue's keys live on in the plugin's model (secrets as SecretStr); the raw section kept
    # them as plain strings, so it keeps only the name: no repr or dump can show an API secret.
    cfg = setup.config = cfg.model_copy(update={"venue": VenueSection(exchange=cfg.venue.exchange)})

    seen: dict[str, int] = {}
    for e in cfg.strategies:
        seen[e.name] = seen.get(e.name, 0) + 1
    for i, e in enumerate(cfg.strategies):
        comp = checked(lookup, "strategies", e.name, f"strategies[{i}].name")
        params = comp and checked(
            validate, comp.config_model, e.params, file, prefix=f"strategies[{i}].params"
        )
        if params is None:
            continue
        sid = e.id or (e.name if seen[e.name] == 1 else f"{e.name}#{i}")
        setup.strategies.append(ResolvedStrategy(sid, e.name, list(e.symbols), params, comp))
    problems += unfed_symbols(cfg, setup.feeds, file)

    checks = []
    for name, value in cfg.risk.items():
        comp = checked(lookup, "risk_checks", name, f"risk.{name}")
        if comp is None:
            continue
        shorthand = not isinstance(value, dict)
        try:
            limits = validate(
                comp.config_model, {"limit": value} if shorthand else value, file, f"risk.{name}"
            )
        except ConfigError as exc:
            # ``max_order_qty: -1`` is what the user wrote: report that key, not its ``.limit``.
            problems.append(exc.renamed(f"risk.{name}.limit", f"risk.{name}") if shorthand else exc)
            continue
        checks.append((comp.priority, name, comp, limits))
    if problems:
        raise ConfigError.combine(problems)
    checks.sort(key=lambda c: (c[0], c[1]))
    setup.risk_checks = [(n, c, v) for _, n, c, v in checks]
    return setup


def unfed_symbols(cfg: EngineConfig, feeds: list, file) -> list[ConfigError]:
    """A strategy symbol that none of the in-process feeds subscribes: it would never see a book.

    Checked only where the feeds name their symbols (market data from a marketstream, Redis or the
    venue carries whatever the other side sends)."""
    if not feeds or len(feeds) != len(cfg.market_data.feeds) or not all(getattr(f, "symbols", None) for f in feeds):
        return []
    fed = {s for f in feeds for s in f.symbols}
    return [
        ConfigError(file, f"strategies[{i}].symbols", f"{sym} is in no feed's symbols ({', '.join(sorted(fed))}): "
                    "the strategy would never see its book")  # fmt: skip
        for i, e in enumerate(cfg.strategies)
        for sym in e.symbols
        if sym not in fed
    ]


def _plugin_source(registry, name: str, data: dict[str, Any], file) -> tuple[Any, BaseModel]:
    """``market_data.<name>``: the engine source that sink plugin offers (``extras["engine_source"]``).

    The core never imports the plugin: the registry hands over its component."""
    from ..known_plugins import install_hint

    comp = registry.sinks.get(name)
    source = comp.extras.get("engine_source") if comp is not None else None
    if source is None:
        raise ConfigError(
            file,
            f"market_data.{name}",
            f"needs plugin {name!r}, which is not loaded: {install_hint(name)}, or select it with --plugins",
        )
    return source, validate(source.config_model, data, file, prefix=f"market_data.{name}")


def load_config(path: str | Path, registry) -> EngineSetup:
    """Read and fully validate an engine config file (used by ``config validate`` too)."""
    return resolve(load_yaml(path), registry, path)
