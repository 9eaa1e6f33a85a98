"""Bybit v5 request signing: HMAC-SHA256, lower-case hex (https://bybit-exchange.github.io/docs/v5/guide).

REST ("Create A Request"): sign ``timestamp + api_key + recv_window + payload``, where the payload is
the query string of a GET or the exact JSON body of a POST, and send the result as ``X-BAPI-SIGN``
with ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (ms) and ``X-BAPI-RECV-WINDOW`` (ms).

WebSocket ``auth`` (private stream and order entry, https://bybit-exchange.github.io/docs/v5/ws/connect):
sign ``"GET/realtime" + expires`` (ms, in the future) and send ``{"op":"auth","args":[key, expires, sig]}``.
Orders on an authenticated ``/v5/trade`` connection carry only a timestamp and recv window.

``hmac.digest`` (one call into OpenSSL) is used rather than ``hmac.new(...).hexdigest()``: same bytes,
about half the time, and this runs once per signed request.
"""

from __future__ import annotations

import hmac

_SHA256 = "sha256"


def rest_signature(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str, secret: str) -> str:
    """``X-BAPI-SIGN`` of a v5 REST request: HMAC-SHA256 of ``timestamp + api_key + recv_window + payload``."""
    msg = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.digest(secret.encode(), msg.encode(), _SHA256).hex()


def ws_auth_signature(expires_ms: int, secret: str) -> str:
    """Signature of a WebSocket ``auth`` op: HMAC-SHA256 of ``"GET/realtime" + expires``."""
    return hmac.digest(secret.encode(), f"GET/realtime{expires_ms}".encode(), _SHA256).hex()


class Signer:
    """Holds the key pair for one venue; the secret is kept as bytes and never shown."""

    __slots__ = ("api_key", "_secret", "recv_window")

    def __init__(self, api_key: str, secret: str, recv_window_ms: int) -> None:
        self.api_key = api_key
        self._secret = secret.encode()
        self.recv_window = recv_window_ms

    def __repr__(self) -> str:
        return "Signer(api_key=**********, secret=**********)"

    def headers(self, timestamp_ms: int, payload: str) -> dict[str, str]:
        """The four ``X-BAPI-*`` headers of a signed REST request with this ``payload``."""
        sig = hmac.digest(
            self._secret, f"{timestamp_ms}{self.api_key}{self.recv_window}{payload}".encode(), _SHA256
        ).hex()
        return {
            "X-BAPI-API-KEY": self.api_key,
            "X-BAPI-TIMESTAMP": str(timestamp_ms),
            "X-BAPI-RECV-WINDOW": str(self.recv_window),
            "X-BAPI-SIGN": sig,
        }

    def ws_auth(self, expires_ms: int, req_id: str | None = None) -> str:
        """The ``auth`` message for a private or order-entry WebSocket, valid until ``expires_ms``."""
        sig = hmac.digest(self._secret, f"GET/realtime{expires_ms}".encode(), _SHA256).hex()
        rid = f'"req_id":"{req_id}",' if req_id else ""
        return f'{{{rid}"op":"auth","args":["{self.api_key}",{expires_ms},"{sig}"]}}'
