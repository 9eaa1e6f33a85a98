"""The ``bybit`` feed entry: which market, which symbols, which depth, where to connect."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from latentspeed_core.config import FeedConfig, WsUrl

from .parsing import DEPTHS, SPOT_MAX_ARGS, WS_URLS


class BybitConfig(FeedConfig):
    """One Bybit v5 public connection carrying many symbols (multi-topic subscribe)."""

    exchange: Literal["bybit"] = "bybit"
    #: ``spot``, ``linear`` (USDT/USDC perpetuals and futures) or ``inverse``.
    market: Literal["spot", "linear", "inverse"] = "linear"
    #: Public endpoint; defaults to the market's production URL. Point at a testnet or loopback here.
    ws_url: WsUrl = ""
    #: Orderbook depth: 1, 50, 200, 1000 (and 500 on linear/inverse).
    depth: int = 50
    #: Also subscribe ``publicTrade.{symbol}``.
    trades: bool = True
    #: Max topics per subscribe request (spot is capped at 10 by the venue).
    subscribe_batch: int = Field(default=10, ge=1)
    #: Application ping period in seconds (Bybit recommends 20 s).
    ping_interval: float = Field(default=20.0, gt=0)
    #: No frame for this long (pongs included) → reconnect.
    silence_timeout: float = Field(default=30.0, gt=0)
    #: A resubscribed book that gets no snapshot within this long → reconnect.
    resync_timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _default_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("ws_url"):
            url = WS_URLS.get(data.get("market", "linear"))
            if url:
                data = {**data, "ws_url": url}
        return data

    @field_validator("depth")
    @classmethod
    def _check_depth(cls, depth: int, info: ValidationInfo) -> int:
        market = info.data.get("market")
        allowed = DEPTHS.get(market, ())
        if market and depth not in allowed:
            raise ValueError(
                f"depth {depth} is not offered on {market}; one of {', '.join(map(str, allowed))}"
            )
        return depth

    @field_validator("subscribe_batch")
    @classmethod
    def _check_batch(cls, batch: int, info: ValidationInfo) -> int:
        if info.data.get("market") == "spot" and batch > SPOT_MAX_ARGS:
            raise ValueError(f"Bybit spot takes at most {SPOT_MAX_ARGS} args per subscribe request")
        return batch
