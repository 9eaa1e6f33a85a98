"""The Redis sink: every published message ``XADD``-ed to the stream named after its topic.

Each message becomes ``XADD {topic} MAXLEN ~ {maxlen} * data {json}``: stream key = the ZeroMQ
topic (``MOCK-preprocessed_book-BTC-USD``), one field ``data`` holding the message JSON, the very
bytes published on ZeroMQ. The core's :class:`~latentspeed_core.sink.Sink` owns the bounded
queue, the writer thread, reconnecting with backoff and the drop counts; this module connects
and writes a batch.

A batch is one round trip: one ``EVALSHA`` of :data:`XADD_BATCH` with the batch's topics as
keys and its messages as arguments, which runs the ``XADD`` s in order inside Redis and answers
once with how many it stored (and the first error, if any). Why not a pipeline of ``XADD`` s:
its replies, one per message, cost the writer thread ~1.5 µs each to parse even with hiredis,
in many reads per batch, and the writer holds Python's GIL for all of that: the event loop that
publishes waited for it (measured: +1.5 µs on the ZeroMQ book p50 and a replay a third to a
half slower, against +0.5 to 1 µs with one reply per batch; figures in the plugin's README). redis-py still does the
connection (URL, TLS, ACL/AUTH, ``HELLO 3``, ``SELECT``, timeouts) and the reply; the request
is packed here from cached per-topic pieces. A script's keys must live on one node, so this
is for a standalone Redis (with or without replicas), not Redis Cluster.

A batch runs atomically, so it is stored entirely or, when the connection breaks before the
answer, maybe not at all: it is written again after reconnecting. Redis may have run it just
before going away, so a reconnect can store a batch twice (at-least-once): consumers that care
drop a ``seq`` they have already seen.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from latentspeed_core.sink import Sink

from .config import RedisSinkConfig

log = logging.getLogger("latentspeed.sink.redis")

#: ``KEYS``: the topic of each message; ``ARGV[1]``: maxlen; ``ARGV[i + 1]``: message i. Returns
#: ``{stored}`` or ``{stored, first error}``; a refused message does not stop the others.
#: ``replicate_commands`` makes Redis < 5 replicate the XADDs' effects (the ids ``*`` picked),
#: which newer versions always do.
XADD_BATCH = """
if redis.replicate_commands then redis.replicate_commands() end
local maxlen = ARGV[1]
local stored = 0
local err = false
for i = 1, #KEYS do
  local r = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[i + 1])
  if type(r) == 'table' and r.err then
    err = err or r.err
  else
    stored = stored + 1
  end
end
if err then return {stored, err} end
return {stored}
"""

#: At most one warning about refused messages (e.g. a key holding another type) this often.
REFUSED_WARN_EVERY_S = 5.0


def connect(url: str, kwargs: dict[str, Any]):
    """One redis-py connection, established (handshake done), with no retries of its own:
    reconnecting is the sink's job, with its backoff."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pool = redis.ConnectionPool.from_url(url, retry=Retry(NoBackoff(), 0), **kwargs)
    conn = pool.make_connection()
    conn.connect()
    return conn


class RedisSink(Sink):
    """``sinks: [{type: redis, url, maxlen, batch, buffer}]``: one stream per topic."""

    def __init__(self, config: RedisSinkConfig) -> None:
        super().__init__("redis", config.buffer, config.batch)
        self.config = config
        self._conn = None
        self._sha = b""
        maxlen = str(config.maxlen).encode()
        self._maxlen_arg = b"$%d\r\n%s\r\n" % (len(maxlen), maxlen)
        #: Topic -> its packed key argument.
        self._keys: dict[bytes, bytes] = {}
        self._refused_warned_at = 0.0

    def describe(self) -> str:
        return self.config.url  # never holds the password (moved to ``password`` on validation)

    def connect(self) -> None:
        self._conn = connect(self.config.url, self.config.client_kwargs())
        self._load_script()

    def _load_script(self) -> None:
        self._conn.send_command("SCRIPT", "LOAD", XADD_BATCH)
        sha = self._conn.read_response()
        self._sha = sha if isinstance(sha, bytes) else str(sha).encode()

    def disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def _pack(self, batch: list[tuple[bytes, bytes]]) -> bytes:
        """``EVALSHA sha n topic... maxlen data...`` in RESP, from cached pieces."""
        n = len(batch)
        count = b"%d" % n
        parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$%d\r\n%s\r\n" % (4 + 2 * n, self._sha, len(count), count)]
        keys = self._keys
        for topic, _ in batch:
            key = keys.get(topic)
            if key is None:
                key = keys[topic] = b"$%d\r\n%s\r\n" % (len(topic), topic)
            parts.append(key)
        parts.append(self._maxlen_arg)
        for _, data in batch:
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
        return b"".join(parts)

    def write(self, batch: list[tuple[bytes, bytes]]) -> int:
        import redis.exceptions as rex

        conn = self._conn
        if conn is None:
            return 0
        request = self._pack(batch)
        for attempt in (1, 2):
            try:
                conn.send_packed_command([request], check_health=False)
                reply = conn.read_response()
            except rex.NoScriptError:
                if attempt == 2:
                    raise
                self._load_script()  # the script cache was flushed (SCRIPT FLUSH, a fresh replica)
                request = self._pack(batch)
                continue
            except rex.ResponseError as exc:
                self._refused(len(batch), str(exc))  # the whole call refused (e.g. Redis Cluster)
                return len(batch)
            except (rex.ConnectionError, rex.TimeoutError, OSError):
                return 0
            break
        stored = int(reply[0])
        if stored < len(batch):
            err = reply[1] if len(reply) > 1 else b"?"
            self._refused(len(batch) - stored, err.decode(errors="replace") if isinstance(err, bytes) else str(err))
        return len(batch)

    def _refused(self, n: int, why: str) -> None:
        self.refused += n
        now = time.monotonic()
        if now - self._refused_warned_at >= REFUSED_WARN_EVERY_S:
            self._refused_warned_at = now
            log.warning("sink redis: Redis refused %d message(s): %s (%d refused so far)", n, why, self.refused)
