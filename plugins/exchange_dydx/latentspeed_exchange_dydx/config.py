"""The ``dydx`` feed entry: which markets, batched or not, where to connect."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from latentspeed_core.config import FeedConfig, WsUrl

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

