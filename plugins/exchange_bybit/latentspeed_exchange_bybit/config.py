"""The ``bybit`` feed entry (market data) and the ``bybit`` venue entry (order entry)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from latentspeed_core.config import FeedConfig, HttpUrl, WsUrl
from latentspeed_core.live import ApiKeyConfig, CredentialsError

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


#: REST and WebSocket hosts (https://bybit-exchange.github.io/docs/v5/guide, .../v5/ws/connect).
REST_URLS = {False: "https://api.bybit.com", True: "https://api-testnet.bybit.com"}
WS_HOSTS = {False: "wss://stream.bybit.com", True: "wss://stream-testnet.bybit.com"}
#: Environment variables the key pair may come from (``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``).
ENV_PREFIX = "BYBIT"


class BybitVenueConfig(ApiKeyConfig):
    """``venue: {exchange: bybit, ...}``: signed order entry on Bybit v5, on the testnet unless told otherwise.

    Going live takes ``testnet: false`` explicitly. The key pair is checked when the config is
    validated, so a run without one stops before connecting, naming the variables to set.
    """

    exchange: Literal["bybit"] = "bybit"
    #: ``spot``, ``linear`` (USDT/USDC perpetuals and futures) or ``inverse``: Bybit's ``category``.
    market: Literal["spot", "linear", "inverse"] = "linear"
    #: ``true`` (default): api-testnet.bybit.com and stream-testnet.bybit.com. ``false``: real money.
    testnet: bool = True
    #: REST base URL; default from ``testnet``.
    rest_url: HttpUrl = ""
    #: WebSocket host (``wss://host[:port]``); ``/v5/private`` and ``/v5/trade`` are appended. Default from ``testnet``.
    ws_url: WsUrl = ""
    #: Full URL of the private stream (order, execution); overrides ``ws_url`` + ``/v5/private``.
    private_ws_url: WsUrl = ""
    #: Full URL of WebSocket order entry; overrides ``ws_url`` + ``/v5/trade``.
    trade_ws_url: WsUrl = ""
    #: How long a request stays valid after its timestamp (``X-BAPI-RECV-WINDOW``; Bybit's default 5000).
    recv_window_ms: int = Field(5000, gt=0, le=60_000)
    #: Send every GTC limit order as ``PostOnly`` (never pays taker: Bybit cancels it instead).
    post_only: bool = False
    #: Send every order ``reduceOnly`` (derivatives only: a session that can only shrink the position).
    reduce_only: bool = False
    #: Orders (and cancels) per second this account may send; default: Bybit's documented default
    #: for the market (10/s linear and inverse, 20/s spot). Raised accounts set theirs; the venue
    #: also follows the ``X-Bapi-Limit`` its answers carry.
    orders_per_second: int | None = Field(None, gt=0)
    #: Seconds to wait for a connection, an ``auth`` answer or a REST reply.
    connect_timeout: float = Field(10.0, gt=0)
    #: Seconds between ``{"op":"ping"}`` on each connection (Bybit recommends 20); nothing heard for
    #: 2.5 intervals means the connection is dead.
    ping_interval: float = Field(20.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _default_urls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            testnet = data.get("testnet", True)
            testnet = testnet if isinstance(testnet, bool) else True  # a bad value is reported by its field
            data = {"rest_url": REST_URLS[testnet], "ws_url": WS_HOSTS[testnet], **data}
        return data

    @field_validator("ws_url")
    @classmethod
    def _host_only(cls, url: str) -> str:
        if "/v5/" in url:
            raise ValueError(
                f"{url!r}: give the host only (e.g. {WS_HOSTS[True]}); the venue appends /v5/private "
                "and /v5/trade (or set private_ws_url / trade_ws_url)"
            )
        return url

    @model_validator(mode="after")
    def _check(self):
        if self.reduce_only and self.market == "spot":
            raise ValueError("reduce_only applies to derivatives (linear, inverse), not spot")
        try:  # fail at start-up, naming where the key was looked for, not at the first signed request
            self.credentials(ENV_PREFIX)
        except CredentialsError as exc:
            raise ValueError(str(exc)) from None
        return self

    def urls(self) -> tuple[str, str, str]:
        """``(rest, private stream, order entry)`` URLs."""
        host = self.ws_url.rstrip("/")
        return (
            self.rest_url.rstrip("/"),
            self.private_ws_url or f"{host}/v5/private",
            self.trade_ws_url or f"{host}/v5/trade",
        )
