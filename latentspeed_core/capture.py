"""Capture files: record every raw feed input, replay it through the same adapter code.

A capture is JSON lines, gzip-compressed when its name ends in ``.gz`` (docs/capture.md);
readers tell the two apart by gzip's magic bytes, not by the name. The first line is a header;
every other line is one input a feed received, in arrival order::

    {"kind": "header", "format": "latentspeed-capture", "version": 1, "created_ns": ..., "feeds": ["binance"]}
    {"feed": "binance", "kind": "connect", "receipt_ns": 1723161600000000000}
    {"feed": "binance", "kind": "rest", "receipt_ns": ..., "data": {"key": "depth:BTC-USDT", "body": "{...}"}}
    {"feed": "binance", "kind": "frame", "receipt_ns": ..., "data": "{\\"stream\\": ...}"}
    {"feed": "mock", "kind": "frame", "receipt_ns": ..., "data": "AQAoAA...", "b64": true}

Text frames are stored as JSON strings, binary frames base64-encoded with ``"b64": true``.
Replay calls ``deliver_connect`` / ``deliver_rest`` / ``deliver_frame`` with the recorded
receipt times, so the feed's parsing, sequencing and book code run exactly as they did live.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

try:
    # ISA-L: inflate 2.8x zlib's on captures (0.26 s against 0.73 s for 219 MB, a third of the time
    # a backtest spent reading its file), deflate at level 1 3x zlib's. Where it has no wheel, or
    # LATENTSPEED_PURE_PYTHON is set, zlib and the gzip module do the same.
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover - isal is a dependency; platforms without a wheel
    _igzip = _isal_zlib = None
    _IsalError = zlib.error

if TYPE_CHECKING:
    from .feed import Feed

log = logging.getLogger(__name__)

FORMAT = "latentspeed-capture"
VERSION = 1
KINDS = ("connect", "frame", "rest")


class CaptureError(Exception):
    """The file is not a readable capture."""


GZIP_MAGIC = b"\x1f\x8b"

#: What reading a damaged capture raises: cut short (EOFError), unreadable (OSError), or a gzip
#: stream that does not inflate (zlib's or ISA-L's error).
UNREADABLE = (EOFError, OSError, zlib.error, _IsalError)


def is_compressed_name(path: str | Path) -> bool:
    """Whether a capture written to ``path`` is gzip-compressed: its name ends in ``.gz``."""
    return str(path).lower().endswith(".gz")


def _inflater():
    return _isal_zlib if _isal_zlib is not None and not os.environ.get("LATENTSPEED_PURE_PYTHON") else zlib


def _chunks(f: IO[bytes], size: int = 1 << 14) -> Iterator[bytes]:
    """A capture file's bytes as they are read: inflated when it is gzip (magic bytes decide).

    Everything that inflates is yielded before an error is raised: ``EOFError`` where the stream
    stops unfinished (a recording cut off, or one still being written), zlib's or ISA-L's error
    where it does not inflate (damage, a bad check). Concatenated gzip members read as one stream,
    as the gzip module reads them. (Small reads: an inflate call that fails gives nothing, so a
    damaged stream loses what inflates from up to ``size`` bytes before the damage.)"""
    data = f.read(size)
    if not data.startswith(GZIP_MAGIC):
        while data:
            yield data
            data = f.read(size)
        return
    zl = _inflater()
    d = zl.decompressobj(31)  # 31: a gzip header and trailer (CRC and size checked)
    fed = False
    while data:
        while data:
            out = d.decompress(data)
            fed = True
            if out:
                yield out
            if not d.eof:
                break
            data = d.unused_data.lstrip(b"\0")  # another member (or the zero padding gzip allows)
            d = zl.decompressobj(31)
            fed = False
        data = f.read(size)
    if fed and not d.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


class Recorder:
    """Appends feed inputs to a JSON-lines capture; ``write`` is called on the hot path.

    The name decides the format: ``.gz`` is gzip (level 1 by default: a live feed must not
    wait on the compressor, and JSON still shrinks about 5x), anything else plain JSON lines, so
    ``--out x.jsonl`` gives a file ``jq`` and ``grep`` read. Lines are buffered (up to
    ``BUFFER`` bytes, then compressed in one call: a call per line cost more than the
    compression); :meth:`flush` and :meth:`close` write them out.
    """

    #: Bytes of lines kept before they go to the file (what a killed process loses, at most,
    #: besides what the compressor holds).
    BUFFER = 1 << 15

    def __init__(
        self,
        path: str | Path,
        feeds: list[str] | None = None,
        compresslevel: int = 1,
        compress: bool | None = None,
        feed_configs: dict[str, dict] | None = None,
    ) -> None:
        self.path = str(path)
        self.compressed = is_compressed_name(path) if compress is None else compress
        self._f: IO[bytes]
        if not self.compressed:
            self._f = open(self.path, "wb", buffering=1 << 16)  # closed by close()
        elif _igzip is not None and compresslevel <= 3 and not os.environ.get("LATENTSPEED_PURE_PYTHON"):
            # ISA-L's level 1: 3x zlib's speed on capture lines, and a smaller file
            self._f = _igzip.open(self.path, "wb", compresslevel=compresslevel)  # type: ignore[assignment]
        else:
            self._f = gzip.open(self.path, "wb", compresslevel=compresslevel)  # type: ignore[assignment]
        self._lines: list[bytes] = []
        self._size = 0
        self.records = 0
        header: dict[str, Any] = {
            "kind": "header",
            "format": FORMAT,
            "version": VERSION,
            "created_ns": time.time_ns(),
        }
        if feeds is not None:
            header["feeds"] = list(feeds)
        if feed_configs:
            # How each feed was configured (no secrets live in feed configs): a capture can be
            # replayed, exported or backtested without the config file that recorded it.
            header["feed_configs"] = feed_configs
        self._f.write(orjson.dumps(header) + b"\n")

    def write(self, feed: str, kind: str, receipt_ns: int, data: Any) -> None:
        rec: dict[str, Any] = {"feed": feed, "kind": kind, "receipt_ns": receipt_ns}
        if data is not None:
            if isinstance(data, bytes | bytearray | memoryview):
                rec["data"] = base64.b64encode(data).decode("ascii")
                rec["b64"] = True
            else:
                rec["data"] = data
        line = orjson.dumps(rec) + b"\n"
        self._lines.append(line)
        self._size += len(line)
        self.records += 1
        if self._size >= self.BUFFER:
            self._write_lines()

    def _write_lines(self) -> None:
        self._f.write(b"".join(self._lines))
        self._lines.clear()
        self._size = 0

    def flush(self) -> None:
        if self._lines:
            self._write_lines()
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            if self._lines:
                self._write_lines()
            self._f.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a stream of byte chunks into lines (no per-line Python I/O layer).

    An error from ``chunks`` is raised after every complete line before it has been yielded;
    only the partial line it cut off is lost."""
    rest = b""
    for data in chunks:
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _capture_lines(path: str | Path) -> Iterator[bytes | dict]:
    """A capture's lines: read, inflated and split on a thread of their own, its frame records
    already decoded to dicts (``_capread.Lines``, compiled), or as ``_lines(_chunks(f))`` gives them.

    The thread pays where a second CPU runs it: a backtest reading a gzip capture in its own thread
    spent ~0.7 s of 1.8 s on the file (with ISA-L), against ~0.2 s taking the thread's work (~1 s:
    zlib's inflate, slower than ISA-L's, and the decoding). On one CPU the two would take turns, and
    all of it would cost more than reading here."""
    if _Lines is not None and not os.environ.get("LATENTSPEED_PURE_PYTHON") and _cpus() > 1:
        return _Lines(path)
    return _file_lines(path)


def _cpus() -> int:
    """CPUs this process may run on (its affinity: taskset, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def _file_lines(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from _lines(_chunks(f))


def read_capture(path: str | Path) -> Iterator[dict]:
    """Yield the records of a capture (header excluded), decoding base64 frames to bytes.

    Gzip or plain JSON lines, told apart by content (a renamed file still reads). A feed's receipt
    times never go back: its inputs were stamped as they arrived, so one out of line (a clock
    stepped, a damaged stamp) is delivered at a neighbour's time, counted and logged, not skipped.
    One record of look-ahead per feed tells which of two is out of line: a stamp ahead of both its
    neighbours is moved back to the one before it (else a replay would wait for it, and a backtest
    run its timers up to it), one behind is moved up. (Each feed's records are yielded one record
    late; the merge orders the feeds by time.)
    """
    header = capture_header(path)
    if header.get("version", 0) > VERSION:
        raise CaptureError(f"{path}: capture version {header.get('version')} is newer than {VERSION}")
    # per feed: [its record read last (yielded once its next one is seen), that record's time, the
    # time of its record yielded before]
    held: dict[Any, list] = {}
    fixed = 0
    lineno = 0
    loads = orjson.loads
    try:
        for line in _capture_lines(path):
            lineno += 1
            if lineno == 1:
                continue  # the header
            if type(line) is dict:  # a frame record the compiled reader decoded, its checks passed
                rec = line
                t = rec["receipt_ns"]
            else:
                try:
                    rec = loads(line)
                except orjson.JSONDecodeError:
                    log.warning("%s:%d: skipped unreadable capture line", path, lineno)
                    continue
                t = rec.get("receipt_ns", 0) if type(rec) is dict else None
                if type(t) is not int:
                    # what no recorder writes: not an object, or a receipt time that is not integer ns
                    log.warning("%s:%d: skipped capture line that is not a record", path, lineno)
                    continue
                if rec.get("b64"):
                    rec["data"] = base64.b64decode(rec["data"])
            feed = rec.get("feed")
            h = held.get(feed)
            if h is None:
                held[feed] = [rec, t, None]
                continue
            prev_t = h[1]
            if t < prev_t:
                if not fixed:
                    log.warning("%s:%d: receipt time out of order (%d after %d): delivered in order, at a "
                                "neighbouring record's time", path, lineno, t, prev_t)  # fmt: skip
                fixed += 1
                last = h[2]
                if last is not None and t >= last:  # the held record is ahead of both neighbours
                    h[0]["receipt_ns"] = prev_t = last
                else:
                    rec["receipt_ns"] = t = prev_t
            yield h[0]
            h[0] = rec
            h[1] = t
            h[2] = prev_t
    except UNREADABLE as exc:
        # a capture cut short (process killed while recording) or damaged: replay what is there
        log.warning("%s: capture ends early after line %d: %s", path, lineno, exc)
    for h in sorted(held.values(), key=lambda h: h[1]):  # each feed's last record, in time order
        yield h[0]
    if fixed > 1:
        log.warning("%s: %d records out of receipt-time order in all", path, fixed)


def capture_header(path: str | Path) -> dict:
    """The header line of a capture (gzip or plain); :class:`CaptureError` if it has none."""
    try:
        with open(path, "rb") as f:
            header = orjson.loads(next(_lines(_chunks(f)), b""))
    except UNREADABLE as exc:
        raise CaptureError(f"{path}: not a readable capture: {exc}") from None
    except orjson.JSONDecodeError:
        raise CaptureError(f"{path}: not a {FORMAT} file (bad header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CaptureError(f"{path}: not a {FORMAT} file (bad header)")
    return header


def capture_feeds(path: str | Path) -> list[str]:
    """The feed names in a capture (from its header, else by scanning it)."""
    header = capture_header(path)
    if "feeds" in header:
        return list(header["feeds"])
    seen: dict[str, None] = {}
    for rec in read_capture(path):
        seen.setdefault(rec.get("feed", ""), None)
    return list(seen)


async def replay_into(
    feed: Feed, path: str | Path, speed: str | float = "max", restamp: bool = False
) -> None:
    """Deliver a capture's records to ``feed`` as its live transport would.

    Records whose ``feed`` equals ``feed.name`` are replayed, or all of them when the
    capture holds a single feed. ``speed`` is ``"max"`` (as fast as possible, yielding
    to the event loop every few hundred records) or a multiplier of recorded time
    (``2.0`` = twice as fast). ``restamp=True`` stamps each input with the current wall
    clock instead of its recorded receipt time (benchmarks measure internal latency so).
    """
    feeds = capture_feeds(path)
    if len(feeds) > 1 and feed.name not in feeds:
        log.warning(
            "%s: capture %s holds no records for this feed (it has: %s)", feed.name, path, ", ".join(feeds)
        )
    await replay_records(feed, read_capture(path), speed, restamp, take_all=len(feeds) <= 1)
    log.info("%s: replay of %s finished", feed.name, path)


async def replay_records(
    feed: Feed, records: Iterable[dict], speed: str | float = "max", restamp: bool = False, take_all: bool = True
) -> None:
    """Deliver already-read capture records (see :func:`replay_into`).

    Benchmarks read a capture into memory first so that decompressing the file, which no
    live feed does, stays out of the measured throughput.
    """
    name = feed.name
    paced = speed != "max"
    factor = float(speed) if paced else 1.0
    if paced and factor <= 0:
        raise ValueError(f"replay speed must be 'max' or > 0, got {speed!r}")
    t0_rec = 0
    t0_wall = 0.0
    count = 0
    frame = feed.deliver_frame
    now_ns = time.time_ns
    for rec in records:
        if not take_all and rec.get("feed") != name:
            continue
        kind = rec.get("kind")
        receipt_ns = rec.get("receipt_ns") or 0
        if paced:
            if not t0_rec:
                t0_rec = receipt_ns
                t0_wall = time.monotonic()
            due = t0_wall + (receipt_ns - t0_rec) / 1e9 / factor
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            count += 1
            if count % 256 == 0:
                await asyncio.sleep(0)  # let signals, stats and subscribers run
        if restamp:
            receipt_ns = now_ns()
        if kind == "frame":
            frame(rec.get("data", b""), receipt_ns)
        else:
            deliver(feed, rec, receipt_ns)


def feed_config_record(cfg) -> dict:
    """A feed config as a capture header keeps it: JSON, without the replay settings."""
    return cfg.model_dump(mode="json", exclude={"replay", "speed"})


def merged_records(sources: list[tuple[str, str | Path]]) -> Iterator[tuple[int, str, dict]]:
    """``(receipt_ns, feed_name, record)`` of every ``(feed_name, capture)`` source, in receipt order.

    A capture holding one feed gives all its records to the feed replaying it; one holding
    several gives each feed the records under its name (as :func:`replay_into` does). Equal
    stamps keep the order of the sources and of the file: the merge is deterministic. A capture
    shared by several feeds is read once (each feed's records wait in a queue of their own).

    The order is ``heapq.merge``'s over the sources keyed by ``(receipt_ns, source index)``: the
    smallest such key among the sources' next records comes next. A backtest runs this once per
    input, so it runs compiled (``_merge.c``) when the extension is built; :func:`_merged_py` is
    the same in Python (and the reference its tests hold it to)."""
    names: list[str] = []
    readers: list[Iterator[dict]] = []
    reader_of: list[int] = []
    shared: list[bool] = []
    by_path: dict[str, int] = {}
    for name, path in sources:
        names.append(name)
        if len(capture_feeds(path)) <= 1:
            # every feed replaying a one-feed capture gets all of it: a reader each
            reader_of.append(len(readers))
            readers.append(iter(read_capture(path)))
            shared.append(False)
        else:  # feeds sharing a multi-feed capture share one reader
            k = by_path.get(str(path))
            if k is None:
                k = by_path[str(path)] = len(readers)
                readers.append(iter(read_capture(path)))
            reader_of.append(k)
            shared.append(True)
    if _Merge is not None and len(set(zip(names, reader_of, strict=True))) == len(names):
        return _Merge(names, readers, reader_of, shared)
    return _merged_py(names, readers, reader_of, shared)  # (one name twice on one reader: they share)


def _merged_py(names: list[str], readers: list, reader_of: list[int], shared: list[bool]):
    """:func:`merged_records` in Python: ``heapq.merge``'s order written out, so that a source
    keeps giving while its next record still comes before every other head."""
    from functools import partial
    from heapq import heapify, heappop, heappush

    dealers: dict[int, _SharedReader] = {}
    pulls = []  # per source: () -> its next record, or None at its end
    for name, k, is_shared in zip(names, reader_of, shared, strict=True):
        if is_shared:
            dealer = dealers.get(k)
            if dealer is None:
                dealer = dealers[k] = _SharedReader(readers[k])
            pulls.append(dealer.puller(name))
        else:
            pulls.append(partial(next, readers[k], None))
    heads: list[dict | None] = [None] * len(names)
    order = []  # (time, source index) of each source's head
    for k, pull in enumerate(pulls):
        rec = pull()
        if rec is not None:
            heads[k] = rec
            order.append((rec.get("receipt_ns") or 0, k))
    heapify(order)
    while order:
        t, c = heappop(order)
        # c has the smallest head; it goes on while its next record still comes first
        bt, bk = order[0] if order else (None, -1)
        name = names[c]
        pull = pulls[c]
        rec = heads[c]
        while True:
            yield t, name, rec
            rec = pull()
            if rec is None:
                break
            t = rec.get("receipt_ns") or 0
            if bk >= 0 and (t > bt or (t == bt and c > bk)):
                heads[c] = rec
                heappush(order, (t, c))
                break


class _SharedReader:
    """One pass over a capture's records, dealing them out to the feeds that replay it."""

    def __init__(self, records: Iterator[dict]) -> None:
        self._records = records
        self._queues: dict[str, deque] = {}

    def puller(self, name: str):
        """``() -> record | None``: feed ``name``'s next record. Its queue exists from now on, so
        records read for the other feeds before this one starts are kept for it."""
        queue = self._queues.setdefault(name, deque())
        queues = self._queues
        records = self._records
        popleft = queue.popleft

        def pull() -> dict | None:
            if queue:
                return popleft()
            for rec in records:
                owner = rec.get("feed")
                if owner == name:
                    return rec
                q = queues.get(owner)
                if q is not None:  # another feed replaying this capture: keep it for that feed
                    q.append(rec)
            return None

        return pull


def deliver(feed: Feed, rec: dict, receipt_ns: int) -> bool:
    """Hand one capture record to ``feed`` as its live transport would; True for a frame."""
    kind = rec.get("kind")
    if kind == "frame":
        feed.deliver_frame(rec.get("data", b""), receipt_ns)
        return True
    if kind == "rest":
        data = rec.get("data") or {}
        if type(data) is not dict:  # what no recorder writes: counted like any bad input
            feed.error("capture: a rest record whose data is not {key, body}", data)
            return False
        feed.deliver_rest(data.get("key", ""), data.get("body", ""), receipt_ns)
    elif kind == "connect":
        feed.deliver_connect(receipt_ns)
    else:
        log.debug("%s: skipped capture record of unknown kind %r", feed.name, kind)
    return False


try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from ._merge import Merge as _Merge
except ImportError:  # no compiler at install time: the Python merge, same order
    _Merge = None

try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from ._capread import Lines as _Lines
except ImportError:  # no compiler (or no zlib headers) at install time: read in this thread
    _Lines = None
