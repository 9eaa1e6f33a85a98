"""Config models: the ``binance`` feed entry (market data) and the ``binance`` venue (order entry)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from latentspeed_core.config import FeedConfig, HttpUrl, WsUrl
from latentspeed_core.live import ApiKeyConfig

from .parsing import (
    DEPTH_SPEEDS,
    MAX_STREAMS,
    REST_URLS,
    TRADES_WS_URLS,
    USDM_HOSTS,
    USDM_LIMITS,
    WS_URLS,
    market_route_url,
    route,
)


class BinanceConfig(FeedConfig):
    """One Binance feed entry: many symbols on one combined-stream connection (spot), or on two (USD-M:
    depth on the ``/public`` route, trades on ``/market``, as Binance's 2026 base-URL split requires)."""

    exchange: Literal["binance"] = "binance"
    #: ``spot`` (default) or ``usdm`` (USD-M futures).
    market: Literal["spot", "usdm"] = "spot"
    #: Combined-stream base URL (``…/stream``) of the depth streams (spot: of trades too); defaults to
    #: the market's production endpoint (USD-M: ``wss://fstream.binance.com/public/stream``).
    ws_url: WsUrl = ""
    #: USD-M only: combined-stream base URL of the trade streams. Default: ``ws_url`` with its
    #: ``/public`` route swapped for ``/market`` (``wss://fstream.binance.com/market/stream``), else
    #: ``ws_url`` itself (a proxy or test server serving every stream on one path). Unset on spot.
    trades_ws_url: WsUrl = ""
    #: REST base URL for depth snapshots; defaults to the market's production endpoint.
    rest_url: HttpUrl = ""
    #: Diff-depth update speed: spot ``100ms`` | ``1000ms``; USD-M ``100ms`` | ``250ms`` | ``500ms`` | ``0ms``.
    depth_speed: str = "100ms"
    #: Levels per side in the REST snapshot (spot 1..5000; USD-M 5, 10, 20, 50, 100, 500 or 1000).
    snapshot_limit: int = Field(default=1000, ge=1, le=5000)
    #: Also subscribe trades.
    trades: bool = True
    #: ``trade`` (every fill) or ``aggTrade`` (aggregated by taker order; the only one USD-M documents).
    trade_channel: Literal["trade", "aggTrade"] = "trade"
    #: No frame for this long → reconnect (each connection on its own). Quiet symbols may need more.
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
            ws = data.get("ws_url")
            if (
                not data.get("trades_ws_url")
                and market in TRADES_WS_URLS
                and isinstance(ws, str)
                and ws.startswith(("ws://", "wss://"))  # a bad ws_url is reported once, under its own key
            ):
                data = {**data, "trades_ws_url": market_route_url(ws)}
        return data

    def endpoint(self) -> str:
        """Both URLs on USD-M (depth, trades), so a message naming the source names both connections."""
        if not self.replay and self.market == "usdm" and self.trades and self.trades_ws_url != self.ws_url:
            return f"{self.ws_url} + {self.trades_ws_url}"
        return super().endpoint()

    @model_validator(mode="after")
    def _check(self) -> BinanceConfig:
        speeds = DEPTH_SPEEDS[self.market]
        if self.depth_speed not in speeds:
            raise ValueError(
                f"depth_speed {self.depth_speed!r} is not offered on {self.market}; use one of {speeds}"
            )
        if self.market == "usdm" and self.snapshot_limit not in USDM_LIMITS:
            raise ValueError(f"snapshot_limit on usdm must be one of {USDM_LIMITS}")
        limit = MAX_STREAMS[self.market]
        if self.market == "spot":
            if self.trades_ws_url:
                raise ValueError(
                    "trades_ws_url applies to market: usdm only; spot serves depth and trades on ws_url"
                )
            per_connection = {"ws_url": len(self.symbols) * (2 if self.trades else 1)}
        else:
            per_connection = {"ws_url": len(self.symbols)}
            if self.trades:
                per_connection["trades_ws_url"] = len(self.symbols)
            self._check_usdm_routes()
        for key, n in per_connection.items():
            if n > limit:
                raise ValueError(
                    f"{n} streams on the {key} connection exceed Binance's {limit} per connection; split the feed"
                )
        return self

    def _check_usdm_routes(self) -> None:
        """On Binance's own hosts a stream pushes data only on its route (an unrouted legacy ``/stream``
        gets public data only): refuse a URL that would connect fine and then stay silent."""
        wanted = [("ws_url", self.ws_url, "public", "depth")]
        if self.trades:
            wanted.append(("trades_ws_url", self.trades_ws_url, "market", "trades"))
        for key, url, want, what in wanted:
            if urlsplit(url).hostname in USDM_HOSTS and route(url) != want:
                host = urlsplit(url).netloc
                raise ValueError(
                    f"{key} {url!r}: Binance serves USD-M {what} on the /{want} route only (base-URL split "
                    f"of 2026-03-06; legacy URLs retired 2026-04-23); use wss://{host}/{want}/stream"
                )


#: Credentials from ``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` when the config gives none.
ENV_PREFIX = "BINANCE"

#: Order-entry and account endpoints per (market, testnet): REST base, WebSocket API, user-data stream base.
#: Sources: spot rest-api.md / web-socket-api.md "General API Information" and testnet/general-info.md;
#: USD-M "General Info" (testnet), "WebSocket API General Info" and the 2026 WebSocket base-URL split
#: (user data on ``/private``).
VENUE_URLS: dict[tuple[str, bool], tuple[str, str, str]] = {
    ("spot", False): ("https://api.binance.com", "wss://ws-api.binance.com:443/ws-api/v3", ""),
    ("spot", True): ("https://testnet.binance.vision", "wss://ws-api.testnet.binance.vision/ws-api/v3", ""),
    ("usdm", False): (
        "https://fapi.binance.com",
        "wss://ws-fapi.binance.com/ws-fapi/v1",
        "wss://fstream.binance.com/private",
    ),
    ("usdm", True): (
        "https://testnet.binancefuture.com",
        "wss://testnet.binancefuture.com/ws-fapi/v1",
        "wss://fstream.binancefuture.com/private",
    ),
}


class BinanceVenueConfig(ApiKeyConfig):
    """``venue: {exchange: binance, ...}``: signed order entry on spot or USD-M futures, testnet by default.

    The API key and secret come from ``api_key``/``api_secret``, else ``BINANCE_API_KEY``/
    ``BINANCE_API_SECRET``, else ``api_key_file``/``api_secret_file``; a config that gives none of
    them is refused when it is loaded (one line naming ``BINANCE_API_KEY``), before any connection.
    """

    exchange: Literal["binance"] = "binance"
    market: Literal["spot", "usdm"] = "spot"
    #: Going live takes ``testnet: false`` explicitly.
    testnet: bool = True
    #: REST base URL (``/api/v3/...`` or ``/fapi/v1/...`` is appended); default per market and testnet.
    rest_url: HttpUrl = ""
    #: WebSocket API URL for order entry (and, on spot, the user data stream); default per market.
    ws_url: WsUrl = ""
    #: USD-M user-data stream base (``/ws?listenKey=...`` is appended); unused on spot.
    user_ws_url: WsUrl = ""
    #: ``recvWindow`` sent with every signed request: how long after its timestamp it may still run.
    recv_window_ms: int = Field(5000, ge=1, le=60000)
    #: Symbols (``BASE-QUOTE``) to load from exchangeInfo; empty: every symbol of the market.
    symbols: list[str] = Field(default_factory=list)
    #: Send GTC limit orders as post-only (spot ``LIMIT_MAKER``, USD-M ``timeInForce=GTX``).
    post_only: bool = False
    #: USD-M only: send every order reduce-only (it may only shrink the position), e.g. to wind down.
    reduce_only: bool = False
    connect_timeout: float = Field(10.0, gt=0)
    #: A request with no answer for this long is looked up by REST (its outcome is unknown).
    request_timeout: float = Field(10.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    #: Seconds between our pings on each connection; no frame for ``silence_timeout`` → reconnect.
    ping_interval: float = Field(20.0, gt=0)
    silence_timeout: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _defaults_and_credentials(self) -> BinanceVenueConfig:
        rest, ws, user = VENUE_URLS[(self.market, self.testnet)]
        for key, default in (("rest_url", rest), ("ws_url", ws), ("user_ws_url", user)):
            if not getattr(self, key):
                object.__setattr__(self, key, default)
        for s in self.symbols:
            if "-" not in s or s.startswith("-") or s.endswith("-"):
                raise ValueError(f"symbol {s!r} is not in the BASE-QUOTE form (e.g. BTC-USDT)")
        object.__setattr__(self, "symbols", [s.upper() for s in self.symbols])
        if self.reduce_only and self.market == "spot":
            raise ValueError("reduce_only applies to USD-M futures (market: usdm), not spot")
        self.credentials(ENV_PREFIX)  # fail at load time, naming where the key was looked for
        return self

    def urls(self) -> tuple[str, str, str]:
        """(REST base, WebSocket API, user-data stream base), without trailing slashes."""
        return self.rest_url.rstrip("/"), self.ws_url, self.user_ws_url.rstrip("/")
