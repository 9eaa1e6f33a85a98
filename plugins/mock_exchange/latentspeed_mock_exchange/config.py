"""Configs of the mock exchange, its feed and its venue (pydantic: configs only, never the hot path)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from latentspeed_core.config import FeedConfig, StrictModel

DEFAULT_SYMBOLS = ["BTC-USD", "ETH-USD"]


class SymbolSpec(StrictModel):
    """How the exchange prices one symbol: start price, grid and random-walk shape."""

    price: float = Field(100.0, gt=0)
    tick_size: float = Field(0.01, gt=0)
    lot_size: float = Field(0.001, gt=0)
    #: Typical size of one book level, in base units.
    level_qty: float = Field(1.0, gt=0)


#: Reasonable defaults for the symbols people type; anything else gets SymbolSpec().
KNOWN_SYMBOLS: dict[str, SymbolSpec] = {
    "BTC-USD": SymbolSpec(price=50_000.0, tick_size=0.5, lot_size=0.0001, level_qty=0.5),
    "ETH-USD": SymbolSpec(price=3_000.0, tick_size=0.05, lot_size=0.001, level_qty=5.0),
    "SOL-USD": SymbolSpec(price=150.0, tick_size=0.01, lot_size=0.01, level_qty=50.0),
}


def _check_symbol(s: str) -> str:
    if not isinstance(s, str) or not s or len(s.encode("ascii", "replace")) > 16:
        raise ValueError(f"symbol {s!r} must be 1..16 ASCII characters (SECURITY_DEFINITION name)")
    return s.upper()


class MockExchangeConfig(StrictModel):
    """The ``mock-exchange`` server (``latentspeed mock-exchange`` flags map one to one)."""

    host: str = "127.0.0.1"
    #: 0 means any free port; the chosen one is logged and exposed as ``MockExchange.port``.
    port: int = Field(9000, ge=0, le=65535)
    #: Market-data tick period in milliseconds (``--tick-rate``; 10 = a hundred updates a second).
    tick_rate: float = Field(10.0, gt=0)
    #: Probability in percent that a marketable order fills (decided once per order).
    fill_prob: float = Field(80.0, ge=0, le=100)
    symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS), min_length=1)
    #: Per-symbol overrides of the built-in specs.
    specs: dict[str, SymbolSpec] = Field(default_factory=dict)
    seed: int | None = None
    #: Book levels per side in every MARKET_DATA snapshot.
    depth: int = Field(10, ge=1, le=1000)
    #: Random-walk step: standard deviation of the mid's move per tick, in basis points.
    volatility_bps: float = Field(1.0, ge=0)
    #: Bid/ask spread around the mid, in basis points (at least one tick).
    spread_bps: float = Field(2.0, ge=0)
    #: Chance per symbol and tick of a public (non-client) TRADE print.
    trade_prob: float = Field(0.05, ge=0, le=1)
    heartbeat_interval: float = Field(1.0, gt=0)
    dead_after: float = Field(5.0, gt=0)
    #: A client whose unsent output passes this many bytes (it stopped reading) is disconnected;
    #: so is one whose output has not drained below the transport's high-water mark for
    #: ``dead_after`` seconds. Bounds the memory one slow reader can hold.
    max_unsent_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    #: Resting orders per connection beyond which new orders are rejected (reason 6).
    max_open_orders: int = Field(100_000, ge=1)
    #: Log every order and fill (logger ``latentspeed_mock_exchange.orders`` at INFO).
    log_orders: bool = True
    #: Spin the event loop instead of sleeping in poll: a client's order is read without a wake-up
    #: of this process, as a remote venue's NIC would take it (benchmarks). Uses one whole CPU.
    busy_poll: bool = False

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        out = [_check_symbol(s) for s in v]
        if len(set(out)) != len(out):
            raise ValueError("duplicate symbol")
        return out

    def spec(self, symbol: str) -> SymbolSpec:
        return self.specs.get(symbol) or KNOWN_SYMBOLS.get(symbol) or SymbolSpec()


class _Connection(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=1, le=65535)
    connect_timeout: float = Field(5.0, gt=0)
    #: Reconnect backoff: initial delay, cap (seconds); full jitter is applied.
    backoff_initial: float = Field(0.1, gt=0)
    backoff_max: float = Field(5.0, gt=0)
    heartbeat_interval: float = Field(1.0, gt=0)
    dead_after: float = Field(5.0, gt=0)


class MockFeedConfig(FeedConfig):
    """``{exchange: mock, host, port, symbols}``; empty ``symbols`` means every symbol defined."""

    exchange: Literal["mock"] = "mock"
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=1, le=65535)
    connect_timeout: float = Field(5.0, gt=0)
    backoff_initial: float = Field(0.1, gt=0)
    backoff_max: float = Field(5.0, gt=0)
    heartbeat_interval: float = Field(1.0, gt=0)
    dead_after: float = Field(5.0, gt=0)

    @field_validator("exchange", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v


class MockVenueConfig(_Connection):
    """``venue: {exchange: mock, host, port}`` in an engine config."""

    exchange: Literal["mock"] = "mock"

    @field_validator("exchange", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v


class PaperInstrument(StrictModel):
    #: At least 1e-8, the venue's fixed-point unit (a finer tick was refused only once the first
    #: book arrived, as a feed error, and the run traded nothing); at most 1e9.
    tick_size: float = Field(ge=1e-8, le=1e9)
    lot_size: float = Field(ge=1e-8, le=1e9)


#: A latency beyond an hour is a unit mistake (ns for µs), not a venue; and a 1e30 µs report time
#: overflowed the engine's latency statistics.
MAX_LATENCY_US = 3_600_000_000.0


class PaperVenueConfig(StrictModel):
    """``venue: {exchange: paper, queue_model: risk_averse, entry_latency_us: 1000, ...}``."""

    #: ``risk_averse``: only trades at our price advance us. ``probabilistic``: a level's size
    #: decreases advance us too, with probability f(back)/(f(front)+f(back)), f(x) = x**queue_power.
    queue_model: Literal["risk_averse", "probabilistic"] = "risk_averse"
    queue_power: float = Field(2.0, gt=0)
    #: Order (and cancel) sent -> at the venue, in microseconds (at most an hour: MAX_LATENCY_US).
    entry_latency_us: float = Field(1000.0, ge=0, le=MAX_LATENCY_US)
    #: Venue acted -> report at the engine, in microseconds.
    response_latency_us: float = Field(1000.0, ge=0, le=MAX_LATENCY_US)
    #: Recorded latencies, drawn at random (seeded) instead of the constants: one line per sample,
    #: ``entry_us response_us`` (or one number, used for both).
    latency_file: str | None = None
    seed: int = 1
    #: Tick and lot size per symbol, when the venue's grid should be enforced (default: 1e-8).
    instruments: dict[str, PaperInstrument] = Field(default_factory=dict)

    @field_validator("latency_file")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        if v is not None:
            load_latencies(v)  # a bad file is a config error, reported with its key
        return v

    @field_validator("instruments")
    @classmethod
    def _upper(cls, v: dict[str, PaperInstrument]) -> dict[str, PaperInstrument]:
        return {k.upper(): i for k, i in v.items()}


def load_latencies(path: str) -> list[tuple[float, float]]:
    """``[(entry_us, response_us), ...]`` from a latency file; ValueError says what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].replace(",", " ").split()
        if not parts:
            continue
        try:
            vals = [float(x) for x in parts]
        except ValueError:
            raise ValueError(f"{path}:{n}: not a number: {line.strip()!r}") from None
        if len(vals) > 2 or any(not (0 <= v <= MAX_LATENCY_US) for v in vals):
            raise ValueError(f"{path}:{n}: want one or two latencies from 0 to {MAX_LATENCY_US:.0f} (microseconds)")
        out.append((vals[0], vals[-1]))
    if not out:
        raise ValueError(f"{path}: no latencies in the file")
    return out
