"""Config models of the ``dydx`` plugin: the feed entry (markets, where to connect) and the venue (order entry)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from latentspeed_core.config import FeedConfig, HttpUrl, StrictModel, WsUrl
from latentspeed_core.live import CredentialsError, secret_value

from .parsing import WS_URL


class DydxConfig(FeedConfig):
    """One dYdX v4 indexer connection carrying many markets (one subscription per market and channel)."""

    exchange: Literal["dydx"] = "dydx"
    #: Indexer WebSocket endpoint (testnet: wss://indexer.v4testnet.dydx.exchange/v4/ws; tests: loopback).
    ws_url: WsUrl = WS_URL
    #: Subscribe with ``"batched": true``: the indexer groups updates into ``channel_batch_data``
    #: (fewer, larger frames; one book emission per batch) at the cost of the batching delay.
    batched: bool = False
    #: Also subscribe ``v4_trades`` per market.
    trades: bool = True
    #: Publish ``DELEVERAGED`` trades (off-book transfers at the bankruptcy price; not market prints).
    deleveraged_trades: bool = False
    #: No frame for this long → reconnect. Quiet markets may need more (the indexer sends no app-level heartbeat).
    silence_timeout: float = Field(default=30.0, gt=0)
    #: Delay before resubscribing after an ``error`` for a subscription (the indexer allows
    #: 2 subscribes per connection + channel + id per second and closes the connection beyond).
    resubscribe_delay: float = Field(default=1.0, ge=0.5)


# -- order entry (the ``dydx`` venue) ------------------------------------------------------------

#: Environment variable holding the wallet mnemonic when the config has none.
MNEMONIC_ENV = "DYDX_MNEMONIC"
#: What ``pip install 'latentspeed-exchange-dydx[trade]'`` brings: gRPC, the chain's protobufs, secp256k1.
TRADE_MODULES = ("grpc", "v4_proto", "coincurve")
TRADE_INSTALL = "pip install 'latentspeed-exchange-dydx[trade]'"


@dataclass(frozen=True)
class Network:
    """Public endpoints of one dYdX network (docs.dydx.xyz, "Connecting to dYdX": endpoints)."""

    chain_id: str
    #: The Order Entry Gateway Service (OEGS), dYdX's gRPC front of the validators.
    node_grpc_url: str
    indexer_rest_url: str
    indexer_ws_url: str


NETWORKS = {
    "testnet": Network(
        "dydx-testnet-4",
        "oegs-testnet.dydx.exchange:443",
        "https://indexer.v4testnet.dydx.exchange",
        "wss://indexer.v4testnet.dydx.exchange/v4/ws",
    ),
    "mainnet": Network(
        "dydx-mainnet-1",
        "oegs.dydx.trade:443",
        "https://indexer.dydx.trade",
        "wss://indexer.dydx.trade/v4/ws",
    ),
}


def grpc_target(url: str) -> tuple[str, bool]:
    """``(host:port, tls)`` of a node URL: ``host:port`` and ``https://``/``grpcs://`` use TLS (port 443
    when none is given); ``http://``/``grpc://`` are plaintext (a local node, the tests' loopback)."""
    tls = True
    rest = url.strip()
    for scheme, secure in (("https://", True), ("grpcs://", True), ("http://", False), ("grpc://", False)):
        if rest.startswith(scheme):
            rest, tls = rest[len(scheme) :], secure
            break
    else:
        if "://" in rest:
            raise ValueError(
                f"{url!r}: use host:port, https://host:port (TLS) or grpc://host:port (plaintext)"
            )
    rest = rest.rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port:
        host, port = rest, "443" if tls else ""
    if not host or "/" in host or not port.isdigit():
        raise ValueError(f"{url!r} is not host:port")
    return f"{host}:{port}", tls


def missing_trade_modules() -> list[str]:
    """The modules of the ``trade`` extra that cannot be imported here (none: order entry can run)."""
    missing = []
    for name in TRADE_MODULES:
        if name in sys.modules:
            if sys.modules[name] is None:  # blocked (tests do this to stand for "not installed")
                missing.append(name)
        elif importlib.util.find_spec(name) is None:
            missing.append(name)
    return missing


class DydxVenueConfig(StrictModel):
    """The ``dydx`` venue: dYdX v4 order entry through a validator (gRPC) with fills from the indexer.

    The mnemonic is a ``SecretStr``: never in a repr, a log line or an error message."""

    #: A validation error never echoes what was given (pydantic's own message included).
    model_config = ConfigDict(hide_input_in_errors=True)

    exchange: Literal["dydx"] = "dydx"
    network: Literal["testnet", "mainnet"] = "testnet"
    #: The wallet's BIP-39 mnemonic; else ``$DYDX_MNEMONIC``; else the text of ``mnemonic_file``.
    mnemonic: SecretStr | None = None
    mnemonic_file: Path | None = None
    #: Subaccount number of the wallet address that trades (0-128000; 0 is the default one).
    subaccount: int = Field(0, ge=0, le=128_000)
    #: Overrides of the network's endpoints (a full node of your own, or loopback in tests).
    node_grpc_url: str | None = None
    indexer_rest_url: HttpUrl | None = None
    indexer_ws_url: WsUrl | None = None
    #: ``short_term``: good-til-block orders, matched as soon as a validator sees them, no sequence
    #: number (the market maker's kind); ``long_term``: stateful good-til-time orders, written to
    #: the chain and matched from the next block. IOC orders are always short-term.
    order_kind: Literal["short_term", "long_term"] = "short_term"
    #: A short-term order (or cancel) lives until block ``height + good_til_blocks``. The docs give a
    #: short block window of 20 blocks (current chain source: 40); the indexer's height lags a little.
    good_til_blocks: int = Field(20, ge=1, le=40)
    #: A long-term order expires this many seconds after it is sent (the chain allows 95 days).
    good_til_seconds: int = Field(28 * 86_400, ge=10, le=95 * 86_400)
    #: Send limit orders as post-only (TIME_IN_FORCE_POST_ONLY): refused rather than taking.
    post_only: bool = False
    #: Seconds to wait for a connection, a REST reply or a broadcast answer.
    connect_timeout: float = Field(10.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)

    @field_validator("node_grpc_url")
    @classmethod
    def _grpc_url(cls, url: str | None) -> str | None:
        if url is not None:
            grpc_target(url)
        return url

    @model_validator(mode="after")
    def _can_trade(self):
        # One line each, at start-up (config validate too), not at the first order.
        missing = missing_trade_modules()
        if missing:
            raise ValueError(
                f"dYdX order entry needs the trade extra (missing {', '.join(missing)}): {TRADE_INSTALL}"
            )
        try:
            self.mnemonic_value()
        except CredentialsError as exc:
            raise ValueError(str(exc)) from None
        return self

    def mnemonic_value(self) -> str:
        """The mnemonic (config, ``$DYDX_MNEMONIC``, ``mnemonic_file``); ``CredentialsError`` names where it looked."""
        return secret_value(self.mnemonic, MNEMONIC_ENV, self.mnemonic_file, "mnemonic")

    def endpoints(self) -> Network:
        """The network's endpoints with this config's overrides."""
        net = NETWORKS[self.network]
        return Network(
            net.chain_id,
            self.node_grpc_url or net.node_grpc_url,
            (self.indexer_rest_url or net.indexer_rest_url).rstrip("/"),
            self.indexer_ws_url or net.indexer_ws_url,
        )
