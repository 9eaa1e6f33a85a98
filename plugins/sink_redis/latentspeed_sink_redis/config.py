"""Config models: the marketstream's ``sinks: [{type: redis, ...}]`` entry and the engine's
``market_data: {redis: {...}}`` section.

A password is a ``SecretStr``, given as ``password`` or inside the URL
(``redis://:secret@host:6379/0``); one in the URL is moved out of it at validation, so the
``url`` that logs, errors and reprs show never holds it.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from latentspeed_core.config import StrictModel
from latentspeed_core.sink import SinkConfig

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _password_out_of_url(data: Any) -> Any:
    """``redis://user:pw@host/0`` -> ``url: redis://user@host/0`` and ``password: pw``."""
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return data
    parts = urlsplit(data["url"])
    if parts.password is None:
        return data
    if data.get("password") is not None:
        raise ValueError("the password is given twice: in url and as password; keep one")
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return {**data, "url": urlunsplit(parts._replace(netloc=netloc)), "password": parts.password}


class RedisConnection(StrictModel):
    """Where Redis is, and how long to wait for it (shared by the sink and the engine's source)."""

    #: ``redis://host:port/db``, ``rediss://`` for TLS, ``unix:///path/redis.sock``; a username
    #: may stand before ``@`` (ACL), a password is better given as ``password``.
    url: str = DEFAULT_URL
    password: SecretStr | None = None
    #: Seconds to wait for a connection, and for any one reply before the connection counts as lost.
    connect_timeout: float = Field(2.0, gt=0)
    timeout: float = Field(5.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _secret(cls, data: Any) -> Any:
        return _password_out_of_url(data)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"expected redis://host:port/db (or rediss://, unix://), got scheme {parts.scheme!r}")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("no host: expected redis://host:port/db")
        return v

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url(self.url, ...)``."""
        return {
            "password": self.password.get_secret_value() if self.password is not None else None,
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.timeout,
            "socket_keepalive": True,
        }


class RedisSinkConfig(SinkConfig, RedisConnection):
    """``sinks: [{type: redis, url: ..., maxlen: ..., batch: ..., buffer: ...}]``."""

    #: Entries kept per stream, trimmed approximately (``XADD ... MAXLEN ~ N``: whole radix-tree
    #: nodes at a time, so trimming stays cheap); about N × message size of Redis memory per topic.
    maxlen: int = Field(100_000, ge=1)


class RedisSourceConfig(RedisConnection):
    """``market_data: {redis: {url: ..., streams: [...], group: ...}}`` of an engine config."""

    #: Stream keys to read: the marketstream topics, e.g. ``MOCK-preprocessed_book-BTC-USD``.
    streams: list[str] = Field(min_length=1)
    #: The consumer group: Redis remembers per group what was delivered and acknowledged, so an
    #: engine restarted with the same group resumes where it stopped. One group per engine: the
    #: consumers of one group share the messages (each message goes to one of them).
    group: str = Field(min_length=1)
    #: This engine's name in the group; its delivered-but-unacknowledged messages are given
    #: back to it after a restart.
    consumer: str = Field("engine", min_length=1)
    #: Where a group that does not exist yet starts: ``new`` messages only, or ``all`` the stream holds.
    start: Literal["new", "all"] = "new"
    #: Messages per read (XREADGROUP COUNT).
    batch: int = Field(500, ge=1, le=100_000)
    #: How long one read waits for new messages, ms (XREADGROUP BLOCK); below ``timeout``.
    block_ms: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _block_below_timeout(self):
        if self.block_ms >= self.timeout * 1000:
            raise ValueError(f"block_ms ({self.block_ms}) must be below timeout ({self.timeout:g} s)")
        return self
