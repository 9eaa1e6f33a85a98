"""Machinery every live (real-money) venue shares: credentials, instrument rules, REST calls, backoff.

The venue's own rules (signing, its rate limits, its private stream, how it reconciles) stay in
the plugin's ``execution.py``; what is the same everywhere lives here, so a new venue is one
folder. Nothing here is on the order hot path except :func:`check_order` (a few comparisons).

Secrets: ``api_key`` / ``api_secret`` are ``SecretStr`` (never in logs, errors or reprs), taken
from the config, else from ``<PREFIX>_API_KEY`` / ``<PREFIX>_API_SECRET``, else from
``api_key_file`` / ``api_secret_file``.
"""

from __future__ import annotations

import asyncio
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict, SecretStr

from .config import StrictModel
from .types import Order, OrdType


class CredentialsError(ValueError):
    """No usable API key or secret: the message says where we looked (never what we found)."""


class ApiKeyConfig(StrictModel):
    """Config keys of a venue that signs requests. Subclass it and add the venue's own keys."""

    #: A validation error never echoes what was given (it may hold the key or the secret): pydantic's
    #: own message too, for code that builds the model directly rather than through ``validate``.
    model_config = ConfigDict(hide_input_in_errors=True)

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_key_file: Path | None = None
    api_secret_file: Path | None = None

    def credentials(self, env_prefix: str) -> tuple[str, str]:
        """``(key, secret)`` from the config, ``{env_prefix}_API_KEY``/``_API_SECRET``, or the files."""
        key = _secret(self.api_key, f"{env_prefix}_API_KEY", self.api_key_file, "api_key")
        secret = _secret(self.api_secret, f"{env_prefix}_API_SECRET", self.api_secret_file, "api_secret")
        return key, secret


def _secret(value: SecretStr | None, env: str, file: Path | None, name: str) -> str:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    from_env = os.environ.get(env)
    if from_env:
        return from_env.strip()
    if file is not None:
        try:
            text = Path(file).expanduser().read_text().strip()
        except OSError as exc:
            raise CredentialsError(f"{name}_file {file}: {exc.strerror or exc}") from None
        if text:
            return text
        raise CredentialsError(f"{name}_file {file} is empty")
    raise CredentialsError(f"missing {name}: set {env}, or {name} / {name}_file in the venue config")


def secret_value(value: SecretStr | None, env: str, file: Path | None, name: str) -> str:
    """One secret that is not an API key pair (a wallet mnemonic): the config's ``value``, else the
    environment variable ``env``, else the text of ``file``. The same rules and errors as
    :meth:`ApiKeyConfig.credentials`; a :class:`CredentialsError` names where it looked, never the value."""
    return _secret(value, env, file, name)


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """A symbol's trading rules as the venue publishes them (Binance exchangeInfo, Bybit instruments-info)."""

    symbol: str
    venue_symbol: str
    tick_size: float
    lot_size: float
    min_qty: float = 0.0
    max_qty: float = 0.0  # 0: no limit
    min_notional: float = 0.0
    #: The market-order lot size where the venue has a separate one (Binance MARKET_LOT_SIZE).
    market_lot_size: float = 0.0


def _off_grid(value: float, step: float) -> bool:
    """``value`` is not a whole multiple of ``step`` (with float tolerance)."""
    if step <= 0:
        return False
    n = value / step
    return abs(n - round(n)) > 1e-9 * max(1.0, abs(n))


def check_order(order: Order, rules: InstrumentRules, mid: float | None = None) -> str | None:
    """Why the venue would refuse ``order`` under ``rules`` (the rule named), or None.

    Checked before sending so a bad order costs nothing at the venue (and no rate-limit weight).
    ``mid`` prices the notional of a market order."""
    qty = order.qty
    is_market = order.ord_type == OrdType.MARKET
    lot = rules.market_lot_size if is_market and rules.market_lot_size else rules.lot_size
    if qty <= 0:
        return f"{rules.symbol}: quantity {qty:g} must be positive"
    if _off_grid(qty, lot):
        return f"{rules.symbol}: quantity {qty:.12g} is not a multiple of the lot size {lot:g} (LOT_SIZE)"
    if rules.min_qty and qty < rules.min_qty - 1e-12:
        return f"{rules.symbol}: quantity {qty:g} below the minimum {rules.min_qty:g} (LOT_SIZE minQty)"
    if rules.max_qty and qty > rules.max_qty + 1e-12:
        return f"{rules.symbol}: quantity {qty:g} above the maximum {rules.max_qty:g} (LOT_SIZE maxQty)"
    price = order.price
    if not is_market:
        if price <= 0:
            return f"{rules.symbol}: price {price:g} must be positive"
        if _off_grid(price, rules.tick_size):
            return f"{rules.symbol}: price {price:.12g} is not a multiple of the tick size {rules.tick_size:g} (PRICE_FILTER)"
    ref = mid if is_market else price
    if rules.min_notional and ref and qty * ref < rules.min_notional - 1e-9:
        return f"{rules.symbol}: notional {qty * ref:.8g} below the minimum {rules.min_notional:g} (MIN_NOTIONAL)"
    return None


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_request(
    method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None, timeout: float = 10.0
) -> HttpResponse:
    """One REST call (in a thread: reconciliation and metadata, never the order hot path).

    Every HTTP status comes back as a response (the venue's error body is the information);
    only transport failures raise (``OSError``/``TimeoutError``)."""

    def call() -> HttpResponse:
        req = urllib.request.Request(url, data=body, method=method,
                                     headers={"User-Agent": "latentspeed", "Accept": "application/json",
                                              **(headers or {})})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as exc:
            return HttpResponse(exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}, exc.read())
        except urllib.error.URLError as exc:
            reason = exc.reason
            raise reason if isinstance(reason, OSError) else OSError(str(reason)) from None

    return await asyncio.to_thread(call)


class Backoff:
    """Reconnect delays: exponential from ``initial`` to ``cap``, full jitter, reset after a healthy minute."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0, healthy_after: float = 60.0) -> None:
        self.initial = initial
        self.cap = cap
        self.healthy_after = healthy_after
        self._next = initial

    def delay(self) -> float:
        d = random.uniform(self._next / 2, self._next)
        self._next = min(self._next * 2, self.cap)
        return d

    def connected_for(self, seconds: float) -> None:
        """Call when a connection ends: a long-lived one resets the backoff."""
        if seconds >= self.healthy_after:
            self._next = self.initial
