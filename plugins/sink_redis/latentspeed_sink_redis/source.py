"""The engine's ``market_data: {redis: ...}`` source: a consumer group on the marketstream's streams.

An engine on any machine reads the streams the Redis sink writes with ``XREADGROUP``, hands each
message to the engine, and ``XACK``s a read's messages once the engine has handled all of them.
Redis keeps the group's position and each consumer's delivered-but-unacknowledged entries, so:

- a restarted engine (same ``group`` and ``consumer``) resumes after the last acknowledged
  message and is never given an acknowledged one again;
- what it was given but had not acknowledged (a crash between handling and ``XACK``) is given
  back first (at-least-once), then the new messages;
- a group that does not exist is created at the stream's end (``start: new``) or beginning
  (``start: all``), with ``MKSTREAM``, so the engine may start before the marketstream.

Losing Redis is a reconnect with backoff (logged), not the end of the run; a Redis that came back
empty (nothing saved) gets its groups created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from latentspeed_core.live import Backoff

from .config import RedisSourceConfig

log = logging.getLogger("latentspeed.engine.md.redis")

Handler = Callable[[dict], None]


def _streams(resp: Any) -> Iterable[tuple[bytes, list]]:
    """XREADGROUP's reply as ``(stream, [(id, fields), ...])`` whatever redis-py and RESP
    version shaped it: ``[[stream, entries]]`` (RESP2) or ``{stream: entries}`` (RESP3, where
    redis-py before 8 wraps entries in one more list)."""
    if not resp:
        return ()
    items = resp.items() if isinstance(resp, dict) else resp
    out = []
    for stream, entries in items:
        if entries and isinstance(entries[0], list):
            entries = entries[0]
        out.append((stream, entries))
    return out


class RedisSource:
    """Books and trades for the engine from Redis streams, through one consumer group."""

    def __init__(self, config: RedisSourceConfig, on_book: Handler, on_trade: Handler) -> None:
        self.config = config
        self.on_book = on_book
        self.on_trade = on_trade
        keys = [s.encode() for s in config.streams]
        #: Per stream key: whether it carries books (topic ``...-preprocessed_book-...``).
        self._is_book = {k: b"-preprocessed_book-" in k for k in keys}
        self.feeds: list = []
        #: Messages handed to the engine, and acknowledged.
        self.messages = 0
        self.acked = 0
        #: Messages handed out again after a restart (given before, never acknowledged).
        self.redelivered = 0
        #: Entries that could not be decoded (skipped and acknowledged), and lost connections.
        self.errors = 0
        self.reconnects = 0
        self.connected = asyncio.Event()

    def describe(self) -> str:
        c = self.config
        return f"redis {c.url} group {c.group} ({', '.join(c.streams)})"

    def stats(self) -> dict:
        return {
            "redis": {
                "messages": self.messages,
                "acked": self.acked,
                "redelivered": self.redelivered,
                "errors": self.errors,
                "reconnects": self.reconnects,
            }
        }

    async def run(self) -> None:
        """Consume until cancelled; a lost connection is retried with backoff, never fatal."""
        import redis.asyncio as aioredis
        import redis.exceptions as rex

        c = self.config
        backoff = Backoff(initial=0.1, cap=5.0, healthy_after=10.0)
        while True:
            client = aioredis.Redis.from_url(c.url, **c.client_kwargs())
            try:
                await self._create_groups(client)
                self.connected.set()
                log.info("reading %s", self.describe())
                await self._consume(client)
            except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
                self.connected.clear()
                self.reconnects += 1
                delay = backoff.delay()
                log.warning("redis %s: %s; reconnecting in %.2fs", c.url, exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _create_groups(self, client) -> None:
        import redis.exceptions as rex

        start = "$" if self.config.start == "new" else "0"
        for key in self._is_book:
            try:
                await client.xgroup_create(key, self.config.group, id=start, mkstream=True)
                log.info("created consumer group %s on %s at %s", self.config.group, key.decode(), start)
            except rex.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # the group exists: Redis knows where we are
                    raise

    async def _consume(self, client) -> None:
        import redis.exceptions as rex

        c = self.config
        task = asyncio.current_task()
        # First what this consumer was given before and never acknowledged, then new messages.
        ids: dict[bytes, bytes] = {k: b"0" for k in self._is_book}
        while True:
            replay = any(v != b">" for v in ids.values())
            try:
                resp = await client.xreadgroup(
                    c.group, c.consumer, ids, count=c.batch, block=None if replay else c.block_ms
                )
                if task is not None and task.cancelling():
                    # redis-py's asyncio client (8.2 seen) can return from a blocking read that was
                    # cancelled, the cancellation lost: stop here, or the next read may never end.
                    raise asyncio.CancelledError
            except rex.ResponseError as exc:
                # The group or the stream is gone (deleted, or Redis restarted empty): make them again.
                if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                log.warning("redis: %s; creating the group again", exc)
                await self._create_groups(client)
                continue
            for stream, entries in _streams(resp):
                key = stream if isinstance(stream, bytes) else str(stream).encode()
                if replay and ids.get(key) != b">":
                    if not entries:
                        ids[key] = b">"  # nothing (more) pending on this stream
                        continue
                    ids[key] = entries[-1][0]
                    self.redelivered += len(entries)
                done = self._handle(key, entries)
                if done:
                    await self._ack(client, key, done)
            if replay and not resp:
                ids = {k: b">" for k in ids}

    async def _ack(self, client, key: bytes, ids: list) -> None:
        """XACK what the engine handled; a stop that lands meanwhile still lets it finish, or
        the next run would be given these messages again."""
        try:
            await client.xack(key, self.config.group, *ids)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.xack(key, self.config.group, *ids), self.config.timeout)
            raise
        self.acked += len(ids)
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a cancellation redis-py lost (see _consume)
            raise asyncio.CancelledError

    def _handle(self, key: bytes, entries: list) -> list:
        """Hand each entry to the engine, in order; returns the ids to acknowledge."""
        is_book = self._is_book.get(key, b"-preprocessed_book-" in key)
        handle = self.on_book if is_book else self.on_trade
        done = []
        for entry_id, fields in entries:
            done.append(entry_id)
            data = fields.get(b"data") if fields else None
            if data is None:  # trimmed away (MAXLEN) while pending, or not ours
                continue
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.errors += 1
                log.warning("redis %s %s: not JSON; skipped", key.decode(), entry_id)
                continue
            self.messages += 1
            handle(msg)
        return done
