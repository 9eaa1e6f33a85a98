"""The ``binance`` feed entry: market, symbols, endpoints, depth stream speed and snapshot size."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from latentspeed_core.config import FeedConfig, HttpUrl, WsUrl

from .parsing import DEPTH_SPEEDS, MAX_STREAMS, REST_URLS, USDM_LIMITS, WS_URLS


class BinanceConfig(FeedConfig):
    """One Binance combined-stream connection carrying many symbols."""

    exchange: Literal["binance"] = "binance"
    #: ``spot`` (default) or ``usdm`` (USD-M futures).
    market: Literal["spot", "usdm"] = "spot"
    #: Combined-stream base URL (``…/stream``); defaults to the market's production endpoint.
    ws_url: WsUrl = ""
    #: REST base URL for depth snapshots; defaults to the market's production endpoint.
    rest_url: HttpUrl = ""
    #: Diff-depth update speed: spot ``100ms`` | ``1000ms``; USD-M ``100ms`` | ``250ms`` | ``500ms`` | ``0ms``.
    depth_speed: str = "100ms"
    #: Levels per side in the REST snapshot (spot 1..5000; USD-M 5, 10, 20, 50, 100, 500 or 1000).
    snapshot_limit: int = Field(default=1000, ge=1, le=5000)
    #: Also subscribe trades.
    trades: bool = True
    #: ``trade`` (every fill) or ``aggTrade`` (aggregated by taker order).
    trade_channel: Literal["trade", "aggTrade"] = "trade"
    #: No frame for this long → reconnect. Quiet symbols may need more.
    silence_timeout: float = Field(default=60.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _default_urls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            market = data.get("market", "spot")
            if not data.get("ws_url") and market in WS_URLS:
                data = {**data, "ws_url": WS_URLS[market]}
            if not data.get("rest_url") and market in REST_URLS:
                data = {**data, "rest_url": REST_URLS[market]}
        return data

    @model_validator(mode="after")
    def _check(self) -> BinanceConfig:
        speeds = DEPTH_SPEEDS[self.market]
        if self.depth_speed not in speeds:
            raise ValueError(
                f"depth_speed {self.depth_speed!r} is not offered on {self.market}; use one of {speeds}"
            )
        if self.market == "usdm" and self.snapshot_limit not in USDM_LIMITS:
            raise ValueError(f"snapshot_limit on usdm must be one of {USDM_LIMITS}")
        n = len(self.symbols) * (2 if self.trades else 1)
        if n > MAX_STREAMS[self.market]:
            raise ValueError(
                f"{n} streams exceed Binance's {MAX_STREAMS[self.market]} per connection; split the feed"
            )
        return self
