"""Structure-aware fuzzing of every input parser, run as a benchmark: inputs/s, crashes, hangs, violations.

    .venv/bin/python benchmarks/fuzz.py --target {mock-server,mock-client,binance,bybit,dydx,all} --inputs N
        [--seed S] [--first I] [--timeout S] [--save-dir DIR] [--json-out FILE]
    .venv/bin/python benchmarks/fuzz.py --replay fuzz-failures/<target>/<file>.json

Why a benchmark and not (only) a test: the figure that matters is how many malformed inputs every
entry point survives, and at what rate; a short fixed-seed run is in tests/test_fuzz_smoke.py.

Inputs are built from the recorded frames in ``fixtures/`` (mock protocol: valid messages from
``protocol.py``'s encoders), then mutated knowing their structure: numbers replaced by ``"inf"``,
``"1e999"``, ``"NaN"``, ``"-5"``, ``"0"`` and friends (quoted and bare), wrong types, missing and extra
keys, levels of the wrong shape, duplicated/reordered/extreme levels, shifted or reordered sequence
numbers (``U``/``u``/``pu``, Bybit ``u``, dYdX ``message_id``, the binary ``seq``), dropped, duplicated
and reordered frames, reconnects in the middle, truncation, bit flips and spliced bytes, 10 MB frames
(every ``HUGE_EVERY``-th input), and for the binary protocol zero/short declared lengths
(``struct.pack('<HHIQ', 0, 1, 1, 0)``), bad types, counts and field values. Every input runs through
the real entry points:

- ``binance``/``bybit``/``dydx``: a fresh venue feed per input, driven sans-IO as the replayer does
  (``Feed.deliver_connect`` / ``deliver_frame`` / ``deliver_rest``, the REST depth snapshot Binance needs
  included), text frames as ``str`` (what the WebSocket gives) or ``bytes``.
- ``mock-client``: the exchange-to-client byte stream, read by read, through ``ExchangeLink.data_received``
  (``FrameDecoder``, sequence checks) into ``MockFeed`` and ``MockVenue``; the same bytes cut at their
  declared lengths into ``MockFeed.deliver_frame`` (the replay path: ``check_frame``, ``decode_book``);
  and the compiled ``decode_book`` compared with the pure-Python one on every MARKET_DATA it accepts.
- ``mock-server``: a real ``latentspeed mock-exchange`` process on loopback; one TCP connection per input
  sends the mutated client stream, then 64 KiB of zeros (a zero header is malformed, so the server
  always closes once it has read everything), and reads all the server sends until it closes.

Checked on everything published (books handed to the feed's sink, market data and trades handed to
the venue's listener, the server's own MARKET_DATA and TRADE messages): prices finite and positive and
strictly ordered per side, sizes finite and positive, books uncrossed, trades with finite positive
price and amount. A crash is an exception escaping an entry point other than its documented
"malformed, counted" path (including one swallowed by a last-resort ``log.exception`` handler), or a
dead process; a hang is an input running longer than ``--timeout`` CPU seconds (``ITIMER_PROF``), a
worker stuck past ``--watchdog`` wall seconds or above ``--max-rss-mb``, or for ``mock-server`` a server
that does not close the connection or answer a fresh well-formed client within ``--io-timeout``, or
grows past ``--max-rss-mb``. Each target runs in a forked worker process, so a segfault or a hang in C
is counted (and the input saved) and the run goes on from the next input.

Every input is generated from (seed, target, index) alone: ``--first I --inputs 1`` reruns one. Each
failing input is saved as JSON in ``--save-dir`` (minimised for violations) and replays with
``--replay FILE``. Progress goes to stderr; the last line of stdout is the JSON summary
``{"target", "inputs", "inputs_per_s", "crashes", "hangs", "invariant_violations"}`` (``--target all``:
one line per target, then a combined line); ``--json-out`` writes the details (signatures, error
reasons, server RSS and log volume).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import logging
import math
import multiprocessing as mp
import operator
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from latentspeed_core.testing import fixtures_dir, free_port

TARGETS = ("mock-server", "mock-client", "binance", "bybit", "dydx")
DEFAULT_SEED = 20241218
#: Every HUGE_EVERY-th input (from index HUGE_OFFSET) carries a ~10 MB frame or stream.
HUGE_EVERY = {
    "mock-server": 20_000,
    "mock-client": 10_000,
    "binance": 10_000,
    "bybit": 10_000,
    "dydx": 10_000,
}
HUGE_OFFSET = 7
HUGE_BYTES = 10 * 1024 * 1024
#: Book levels kept per side in the snapshots the fuzzer builds (deep books only slow the checks).
SNAPSHOT_DEPTH = 100
_ALL = 1 << 30  # "every level" for top_bids/top_asks

#: ("config", key) first, then ("connect", None) | ("frame", bytes | str) | ("rest", [key, bytes]) |
#: ("tframe", bytes | str) (a frame on Binance USD-M's separate trades connection) |
#: ("read", bytes) (mock-client) | ("send", bytes) (mock-server).
Step = tuple[str, Any]

# -- values the mutators use ----------------------------------------------------------------------------
NUM_STRINGS = (
    "inf", "-inf", "+inf", "Infinity", "-Infinity", "INF", "infinity", "1e999", "-1e999", "1E400", "1e309",
    "NaN", "nan", "-nan", "NAN", "-5", "-0.5", "-1e-8", "-3000", "0", "0.0", "-0", "0e0", "00", "0.00000000",
    "1e-999", "4.9e-324", "1e-320", "1e308", "1.7976931348623157e308", "123456789012345678901234567890",
    "0.1", "1", "", " ", "abc", "1,5", "0x10", "1_000", "+5", " 5", "5 ", "5\u0000", "\u0661\u0662",
    "\uff15", "1e", ".", "-", "1.2.3", "true", "null", "1" + "0" * 400,
)  # fmt: skip
RAW_TOKENS = (
    "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1E400", "-0", "0", "-5", "1.5", "-2.5e3",
    "18446744073709551616", "-9223372036854775809", "9223372036854775807", "1e-400", "1" + "0" * 30,
    "true", "null", "[]", "{}", '""',
)  # fmt: skip
WRONG_TYPES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, "", "x", "1", [], {}, [[]], [["1", "1"]], {"a": 1}, [None, None],
)  # fmt: skip
INT_SPECIALS = (0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63))
SEQ_KEYS = frozenset(("U", "u", "pu", "seq", "message_id", "lastUpdateId", "E", "T", "ts"))
STR_SPECIALS = ("", " ", "\u0000", "\u00e9\u00e8", "\ud7ff", "x" * 300, "null", "0")
BYTE_SPECIALS = b'\x00\xff"\\[]{},:-e.9 \x80\xc3\n'


class Hang(BaseException):
    """Raised by the CPU-time watchdog inside the code under test (a BaseException, so that no
    ``except Exception`` there swallows it)."""


# -- the invariant checker ------------------------------------------------------------------------------
def _side_problem(levels: list, bids: bool) -> str | None:
    """What is wrong with one side's ``[[price, qty], ...]`` (best first), or None."""
    try:
        ps = [lv[0] for lv in levels]
        qs = [lv[1] for lv in levels]
        if not all(map(math.isfinite, ps)) or min(ps) <= 0:
            bad = next((p for p in ps if not (math.isfinite(p) and p > 0)), None)
            return f"price not finite and positive ({bad!r})"
        if not all(map(math.isfinite, qs)) or min(qs) <= 0:
            bad = next((lv for lv in levels if not (math.isfinite(lv[1]) and lv[1] > 0)), None)
            return f"size not finite and positive ({bad!r})"
        if not all(map(operator.gt if bids else operator.lt, ps, ps[1:])):
            return "prices not strictly ordered"
    except (TypeError, ValueError, IndexError) as exc:
        return f"malformed level ({type(exc).__name__}: {exc})"
    return None


class Checker:
    """Collects invariant violations (signature, detail) of what one input made an entry point publish."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        #: Execution reports from the mock venue that no engine should get (not book/trade invariants).
        self.report_anomalies: list[tuple[str, str]] = []
        self.books = 0
        self.trades = 0

    def clear(self) -> None:
        self.violations = []
        self.report_anomalies = []

    def fail(self, where: str, what: str, detail: str = "") -> None:
        if len(self.violations) < 20:
            self.violations.append((f"{where}: {what.split(' (')[0]}", f"{what} {detail}".strip()))

    def levels(self, where: str, bids: list, asks: list) -> None:
        self.books += 1
        for name, side, is_bid in (("bid", bids, True), ("ask", asks, False)):
            if side:
                problem = _side_problem(side, is_bid)
                if problem:
                    self.fail(where, f"book {name} {problem}", f"top={side[:3]!r}")
        try:
            if bids and asks and not bids[0][0] < asks[0][0]:
                self.fail(where, "book crossed", f"bid={bids[0]!r} ask={asks[0]!r}")
        except (TypeError, IndexError):
            pass  # reported above as a malformed level

    def book(self, where: str, book: Any) -> None:
        self.levels(where, book.top_bids(_ALL), book.top_asks(_ALL))

    def trade(self, where: str, trade: Any) -> None:
        self.trades += 1
        for name in ("price", "amount"):
            v = getattr(trade, name)
            if not (type(v) is float and math.isfinite(v) and v > 0):
                self.fail(where, f"trade {name} not finite and positive ({v!r})", repr(trade))
        if trade.side not in ("buy", "sell"):
            self.fail(where, f"trade side invalid ({trade.side!r})", repr(trade))

    def report(self, where: str, r: Any) -> None:
        """Execution reports: fills at a positive finite price and size, no negative quantities."""
        vals = (r.last_px, r.last_qty, r.leaves_qty, r.cum_qty)
        problem = None
        if not all(map(math.isfinite, vals)) or min(vals) < 0:
            problem = "negative or non-finite quantity or price"
        elif int(r.exec_type) in (1, 2) and not (r.last_px > 0 and r.last_qty > 0):
            problem = "fill without a positive price and size"
        if problem and len(self.report_anomalies) < 20:
            self.report_anomalies.append((f"{where}: execution report {problem}", repr(r)))


class CheckingSink:
    """A FeedSink that runs the checker on every book and trade a feed publishes."""

    def __init__(self, checker: Checker, where: str) -> None:
        self.checker = checker
        self.where = where

    def on_book(self, feed: Any, symbol: str, book: Any, timestamp_ns: int, receipt_ns: int) -> None:
        self.checker.book(f"{self.where} {symbol}", book)

    def on_trade(self, feed: Any, trade: Any) -> None:
        self.checker.trade(f"{self.where} {trade.symbol}", trade)


class ErrorLogTrap(logging.Handler):
    """Records ERROR log records: an exception caught by a last-resort ``log.exception`` is a crash."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < 5:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text += f": {type(exc).__name__}: {exc}"
            self.records.append(f"{record.name}: {text}")


# -- JSON mutation ----------------------------------------------------------------------------------------
_Entry = tuple[Any, Any, Any]  # (container, key, value)


def _walk(holder: list, rng: random.Random | None = None, fanout: int = 6) -> list[_Entry]:
    """Every (container, key, value) under ``holder[0]``, the root included.

    With ``rng``, only ``fanout`` random elements of a longer list are visited (the list itself
    still is): a mutation then costs the same on a 200-level snapshot as on a one-level delta.
    """
    out: list[_Entry] = []
    stack: list[_Entry] = [(holder, 0, holder[0])]
    while stack:
        ent = stack.pop()
        out.append(ent)
        v = ent[2]
        if type(v) is dict:
            for k, x in v.items():
                stack.append((v, k, x))
        elif type(v) is list:
            n = len(v)
            if rng is not None and n > fanout:
                for i in rng.sample(range(n), fanout):
                    stack.append((v, i, v[i]))
            else:
                for i in range(n):
                    stack.append((v, i, v[i]))
    return out


def _is_num_str(v: Any) -> bool:
    if type(v) is not str or not v or len(v) > 40:
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _is_level(v: Any) -> bool:
    return type(v) is list and len(v) == 2 and all(type(x) in (str, int, float) for x in v)


def _is_levels(v: Any) -> bool:
    return type(v) is list and bool(v) and (_is_level(v[0]) or (type(v[0]) is dict and "price" in v[0]))


class JsonMutator:
    """Structure-aware mutations of a decoded JSON frame; bare tokens are spliced in at serialisation."""

    OPS = (
        ("num_str", 25), ("extreme_level", 12), ("raw_num", 8), ("seq_shift", 10), ("int_field", 6),
        ("wrong_type", 8), ("del_key", 7), ("add_key", 3), ("list_op", 10), ("level_shape", 6),
        ("str_field", 4), ("dup_price", 4),
    )  # fmt: skip

    def __init__(self, rng: random.Random, keys: list[str], strings: list[str]) -> None:
        self.rng = rng
        self.keys = keys
        self.strings = strings
        self.raw: list[str] = []
        self._ops = [o for o, _ in self.OPS]
        self._weights = [w for _, w in self.OPS]

    def marker(self, token: str) -> str:
        self.raw.append(token)
        return f"#@R{len(self.raw) - 1}@#"

    def mutate(self, holder: list, n: int) -> list[str]:
        """Apply ``n`` mutations to ``holder[0]``; returns the names of those applied."""
        done = []
        for _ in range(n):
            entries = _walk(holder, self.rng)
            for _attempt in range(6):
                op = self.rng.choices(self._ops, self._weights)[0]
                try:
                    applied = getattr(self, "_" + op)(entries)
                except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError):
                    applied = False  # this shape does not take this mutation (an earlier one changed it)
                if applied:
                    done.append(op)
                    break
        return done

    def _pick(self, entries: list[_Entry], pred: Callable[[Any], bool]) -> _Entry | None:
        cands = [e for e in entries if pred(e[2])]
        return self.rng.choice(cands) if cands else None

    def _num_str(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, _is_num_str)
        if e is None:
            return False
        e[0][e[1]] = self.rng.choice(NUM_STRINGS)
        return True

    def _raw_num(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: _is_num_str(v) or (type(v) in (int, float)))
        if e is None:
            return False
        e[0][e[1]] = self.marker(self.rng.choice(RAW_TOKENS))
        return True

    def _extreme_level(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, _is_levels)
        if e is None:
            return False
        levels = e[2]
        rng = self.rng
        shaped = [
            lv for lv in levels if _is_level(lv) or (type(lv) is dict and "price" in lv and "size" in lv)
        ]
        if not shaped:
            return False
        good = rng.choice(shaped)
        if type(good) is dict:
            lvl = dict(good)
            keys = ["price", "size"]
        else:
            lvl = list(good)
            keys = [0, 1]
        which = rng.random()
        if which < 0.45:
            lvl[keys[0]] = rng.choice(NUM_STRINGS)
        elif which < 0.9:
            lvl[keys[1]] = rng.choice(NUM_STRINGS)
        else:
            lvl[keys[0]] = rng.choice(NUM_STRINGS)
            lvl[keys[1]] = rng.choice(NUM_STRINGS)
        if rng.random() < 0.5:
            levels.insert(rng.randrange(len(levels) + 1), lvl)
        else:
            levels[rng.randrange(len(levels))] = lvl
        return True

    def _seq_shift(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is int)
        cands = [x for x in entries if type(x[2]) is int and x[1] in SEQ_KEYS]
        if cands:
            e = self.rng.choice(cands)
        if e is None:
            return False
        rng = self.rng
        delta = rng.choice((-1, 1, -2, 2, 3, -1000, 1000, -(10**9)))
        e[0][e[1]] = e[2] + delta if rng.random() < 0.85 else rng.choice(INT_SPECIALS)
        return True

    def _int_field(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is int)
        if e is None:
            return False
        v = e[2]
        rng = self.rng
        choice = rng.random()
        if choice < 0.4:
            new: Any = rng.choice(INT_SPECIALS)
        elif choice < 0.55:
            new = self.marker(
                rng.choice(("18446744073709551616", "-9223372036854775809", "1e999", "1.5", "-0"))
            )
        elif choice < 0.7:
            new = str(v)
        elif choice < 0.85:
            new = float(v)
        else:
            new = None
        e[0][e[1]] = new
        return True

    def _wrong_type(self, entries: list[_Entry]) -> bool:
        e = self.rng.choice(entries)
        e[0][e[1]] = copy.deepcopy(self.rng.choice(WRONG_TYPES))
        return True

    def _del_key(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is dict and bool(v))
        if e is None:
            return False
        del e[2][self.rng.choice(list(e[2]))]
        return True

    def _add_key(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is dict)
        if e is None:
            return False
        rng = self.rng
        key = rng.choice(self.keys) if self.keys and rng.random() < 0.8 else "zz" + str(rng.randrange(9))
        e[2][key] = copy.deepcopy(rng.choice(WRONG_TYPES)) if rng.random() < 0.6 else rng.choice(NUM_STRINGS)
        return True

    def _list_op(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is list and bool(v))
        if e is None:
            return False
        lst = e[2]
        rng = self.rng
        op = rng.randrange(9)
        if op == 0:
            del lst[rng.randrange(len(lst))]
        elif op == 1:
            i = rng.randrange(len(lst))
            lst.insert(i, copy.deepcopy(lst[i]))
        elif op == 2 and len(lst) > 1:
            i, j = rng.randrange(len(lst)), rng.randrange(len(lst))
            lst[i], lst[j] = lst[j], lst[i]
        elif op == 3:
            lst.reverse()
        elif op == 4:
            rng.shuffle(lst)
        elif op == 5:
            lst.clear()
        elif op == 6:
            del lst[len(lst) // 2 :]
        elif op == 7:
            lst.extend(copy.deepcopy(lst) * rng.randint(1, 20))
        else:
            lst.insert(rng.randrange(len(lst) + 1), copy.deepcopy(rng.choice(WRONG_TYPES)))
        return True

    def _level_shape(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, _is_level)
        if e is None:
            return False
        p, q = e[2]
        rng = self.rng
        shapes: list[Any] = [
            [p], [], [p, q, q], [q, p], {"price": p, "size": q}, p, [[p, q]], [p, None], [None, q],
            [self.marker(str(p)) if _is_num_str(p) else p, self.marker(str(q)) if _is_num_str(q) else q],
        ]  # fmt: skip
        e[0][e[1]] = rng.choice(shapes)
        return True

    def _str_field(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: type(v) is str and not _is_num_str(v))
        if e is None:
            return False
        v = e[2]
        rng = self.rng
        e[0][e[1]] = rng.choice(
            (v.upper(), v.lower(), v + "x", " " + v, v[:-1], rng.choice(STR_SPECIALS),
             rng.choice(self.strings) if self.strings else v)
        )  # fmt: skip
        return True

    def _dup_price(self, entries: list[_Entry]) -> bool:
        e = self._pick(entries, lambda v: _is_levels(v) and _is_level(v[0]))
        if e is None:
            return False
        levels = [lv for lv in e[2] if _is_level(lv)]
        lvl = list(self.rng.choice(levels))
        lvl[1] = self.rng.choice(("0", "1", "0.5", "1e-8", lvl[1]))
        e[2].insert(self.rng.randrange(len(e[2]) + 1), lvl)
        return True

    def dumps(self, obj: Any) -> bytes:
        """Serialise (compact, spaced or indented), then splice the bare tokens in."""
        rng = self.rng
        style = rng.random()
        try:
            if style < 0.75:
                out = orjson.dumps(obj)
            elif style < 0.9:
                out = json.dumps(obj, separators=(", ", ": "), ensure_ascii=False).encode()
            else:
                out = json.dumps(obj, indent=1, ensure_ascii=False).encode()
        except (TypeError, ValueError, orjson.JSONEncodeError):
            out = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
        for i, token in enumerate(self.raw):
            out = out.replace(f'"#@R{i}@#"'.encode(), token.encode())
        self.raw = []
        return out


def mutate_bytes(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """Byte-level damage: truncation, bit flips, special bytes, insertions, deletions, splices."""
    b = bytearray(data)
    op = rng.randrange(10)
    n = len(b)
    if op == 0 or not n:
        return bytes(b[: rng.randrange(n + 1)]) if n else b""
    if op == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif op == 2:
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(n)] = rng.choice(BYTE_SPECIALS)
    elif op == 3:
        i = rng.randrange(n + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    elif op == 4:
        i = rng.randrange(n)
        del b[i : i + rng.randint(1, 16)]
    elif op == 5 and pool:
        other = rng.choice(pool)
        i, j = rng.randrange(n), rng.randrange(len(other) + 1)
        b[i:] = other[j:]
    elif op == 6:
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 64))
        b[i:i] = b[i:j]
    elif op == 7:
        b[0:0] = rng.choice((b"\xef\xbb\xbf", b" \n\t", b"\x00", b"[", b"{"))
    elif op == 8:
        b += rng.choice((b"}", b",", b"\x00", b"\xff\xfe", b" {}"))
    else:
        i = rng.randrange(n + 1)
        b[i:i] = b"\xff\xfe\xc3("
    return bytes(b)


# -- saved inputs -----------------------------------------------------------------------------------------
def encode_steps(steps: list[Step]) -> list[dict]:
    """JSON-safe steps: text where the data was text, base64 for bytes."""
    out = []
    for kind, data in steps:
        if kind == "rest":
            key, body = data
            out.append({"kind": kind, "key": key, **_enc(body)})
        elif kind == "config":
            out.append({"kind": kind, "value": data})
        elif data is None:
            out.append({"kind": kind})
        else:
            out.append({"kind": kind, **_enc(data)})
    return out


def _enc(data: bytes | str) -> dict:
    if isinstance(data, str):
        return {"text": data}
    return {"b64": base64.b64encode(data).decode()}


def decode_steps(items: list[dict]) -> list[Step]:
    out: list[Step] = []
    for it in items:
        payload: Any = (
            it["text"] if "text" in it else base64.b64decode(it["b64"]) if "b64" in it else it.get("value")
        )
        if it["kind"] == "rest":
            payload = [it["key"], payload]
        out.append((it["kind"], payload))
    return out


def describe_steps(steps: list[Step], limit: int = 300) -> list[str]:
    """Short printable form of the steps (for reports)."""
    out = []
    for kind, data in steps:
        if data is None or kind == "config":
            out.append(f"{kind} {data!r}" if data is not None else kind)
            continue
        if kind == "rest":
            data = data[1]
        text = data if isinstance(data, str) else repr(bytes(data))
        out.append(f"{kind} {text[:limit]}{'...' if len(text) > limit else ''} ({len(data)} bytes)")
    return out


# -- targets: common ------------------------------------------------------------------------------------
class Target:
    """One fuzzing target: builds inputs from (seed, index) and runs them through the real entry points."""

    name = ""
    #: Run each input under the CPU-time watchdog (in-process code); False when the work is elsewhere.
    cpu_watchdog = True

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.checker = Checker()
        self.trap = ErrorLogTrap()
        self.errors: Counter[str] = Counter()
        #: The first full reason of each kind of skipped input.
        self.error_examples: dict[str, str] = {}
        self.frames = 0
        self.extra: dict[str, Any] = {}

    def rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.name}:{index}")

    def generate(self, index: int) -> list[Step]:
        raise NotImplementedError

    def run(self, steps: list[Step]) -> None:
        raise NotImplementedError

    def minimise(self, steps: list[Step], signature: str, budget: int = 300) -> list[Step]:
        """Drop steps, then list elements of JSON frames, while ``signature`` still shows."""
        return steps

    def describe(self, steps: list[Step]) -> list[str]:
        """A readable form of an input, for saved failures."""
        return describe_steps(steps)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the target holds (a server process)."""

    def details(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "books_checked": self.checker.books,
            "trades_checked": self.checker.trades,
            "skipped_inputs_by_reason": {
                k: [n, self.error_examples.get(k, "")] for k, n in self.errors.most_common(25)
            },
            **self.extra,
        }


def _reason(reason: str) -> str:
    """Group a feed's error reason: its text up to the first detail."""
    head = reason.split(": ")
    key = ": ".join(head[:2]) if head[0] in ("bad frame", "malformed message") else head[0]
    return re.sub(r"\d+", "N", key)[:80]


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _fixture_objects(folder: Path, pattern: str = "*.json") -> list[bytes]:
    """Every parseable JSON frame under ``folder`` (and the lines of its .jsonl files), compact."""
    out = []
    for p in sorted(folder.rglob(pattern)):
        if "ELIDED" in p.name or "signing" in p.name:
            continue
        try:
            out.append(orjson.dumps(_load(p)))
        except orjson.JSONDecodeError:
            continue
    return out


def _collect_vocab(frames: list[bytes]) -> tuple[list[str], list[str]]:
    """Keys and short non-numeric strings seen in the corpus (for add_key / str_field)."""
    keys: set[str] = set()
    strings: set[str] = set()
    for raw in frames[:400]:
        for _c, k, v in _walk([orjson.loads(raw)]):
            if type(k) is str:
                keys.add(k)
            if type(v) is str and 0 < len(v) < 40 and not _is_num_str(v):
                strings.add(v)
    return sorted(keys), sorted(strings)


class _NaiveSide:
    """price (float) -> (price text, size text), for building consistent snapshots from recorded updates."""

    def __init__(self, levels: list) -> None:
        self.levels: dict[float, tuple[str, str]] = {}
        self.apply(levels)

    def apply(self, levels: list) -> None:
        for p, q in levels:
            if float(q) == 0:
                self.levels.pop(float(p), None)
            else:
                self.levels[float(p)] = (p, q)

    def top(self, n: int, bids: bool) -> list[list[str]]:
        return [list(self.levels[k]) for k in sorted(self.levels, reverse=bids)[:n]]


_DATA_KINDS = ("frame", "tframe", "rest")


@dataclass
class _PStep:
    """A step while an input is being built: original bytes, or a decoded object being mutated."""

    kind: str
    src: bytes | None = None
    obj: Any = None
    key: str = ""
    parsed: bool = False

    def decoded(self) -> Any:
        if not self.parsed:
            self.obj = orjson.loads(self.src) if self.src is not None else None
            self.parsed = True
        return self.obj


class VenueTarget(Target):
    """A JSON WebSocket venue: fresh feed per input, frames through ``deliver_frame``/``deliver_rest``."""

    def setup_corpus(self, frames: list[bytes], noise: list[bytes]) -> None:
        self.pool = frames + noise
        self.noise = noise
        self.keys, self.strings = _collect_vocab(self.pool)

    # subclasses: scenario(rng) -> (config key, list[_PStep]); make_feed(config key) -> Feed
    def scenario(self, rng: random.Random) -> tuple[str, list[_PStep]]:
        raise NotImplementedError

    def make_feed(self, key: str) -> Any:
        raise NotImplementedError

    def generate(self, index: int) -> list[Step]:
        rng = self.rng(index)
        key, plan = self.scenario(rng)
        huge = index % HUGE_EVERY[self.name] == HUGE_OFFSET
        if huge:
            self._huge(rng, plan)
        elif rng.random() >= 0.04:  # 4%: the recorded session unchanged (every one must pass)
            if rng.random() < 0.3:
                self._sequence_mutation(rng, plan)
            mut = JsonMutator(rng, self.keys, self.strings)
            cands = [s for s in plan if s.kind in _DATA_KINDS]
            n_steps = 1 + (rng.random() < 0.35) + (rng.random() < 0.1)
            for st in rng.sample(cands, min(n_steps, len(cands))):
                try:
                    obj = st.decoded()
                except orjson.JSONDecodeError:
                    st.src = mutate_bytes(rng, st.src or b"", self.pool)
                    continue
                holder = [obj]
                mut.mutate(holder, 1 + (rng.random() < 0.3) + (rng.random() < 0.1))
                st.src = mut.dumps(holder[0])
                st.obj, st.parsed = None, False
            if rng.random() < 0.12 and cands:
                st = rng.choice(cands)
                st.src = mutate_bytes(rng, st.src or b"", self.pool)
                st.obj, st.parsed = None, False
        steps: list[Step] = [("config", key)]
        for st in plan:
            if st.kind == "connect":
                steps.append(("connect", None))
                continue
            data: bytes | str = st.src or b""
            if st.kind != "rest" and rng.random() < 0.5:
                try:
                    data = data.decode()  # a text frame, as the WebSocket library hands it over
                except UnicodeDecodeError:
                    pass
            steps.append(("rest", [st.key, data]) if st.kind == "rest" else (st.kind, data))
        return steps

    def _sequence_mutation(self, rng: random.Random, plan: list[_PStep]) -> None:
        frames = [i for i, s in enumerate(plan) if s.kind in _DATA_KINDS]
        if not frames:
            return
        op = rng.randrange(8)
        i = rng.choice(frames)
        if op == 0 and len(frames) > 1:
            del plan[i]
        elif op == 1:
            plan.insert(rng.randrange(1, len(plan) + 1), copy.copy(plan[i]))
        elif op == 2 and i + 1 < len(plan):
            plan[i], plan[i + 1] = plan[i + 1], plan[i]
        elif op == 3:
            st = plan.pop(i)
            plan.insert(rng.randrange(1, len(plan) + 1), st)
        elif op == 4:
            plan.insert(rng.randrange(1, len(plan) + 1), _PStep("connect"))
        elif op == 5 and self.noise:
            plan.insert(rng.randrange(1, len(plan) + 1), _PStep("frame", rng.choice(self.noise)))
        elif op == 6 and any(s.kind == "tframe" for s in plan):  # a frame on the other connection
            st = plan[i]
            if st.kind != "rest":
                plan[i] = _PStep(
                    "tframe" if st.kind == "frame" else "frame", st.src, st.obj, st.key, st.parsed
                )
        else:  # a stale snapshot (or any earlier frame) again at the end
            plan.append(copy.copy(plan[i]))

    def _huge(self, rng: random.Random, plan: list[_PStep]) -> None:
        """One ~10 MB frame: a giant level list, string, nesting, whitespace, number or garbage."""
        cands = [s for s in plan if s.kind in _DATA_KINDS]
        st = rng.choice(cands)
        kind = rng.randrange(6)
        if kind == 0:
            holder = [st.decoded()]
            target = next((e for e in _walk(holder) if _is_levels(e[2])), None)
            if target is not None:
                lst = target[2]
                proto = lst[0]
                n = HUGE_BYTES // 28
                if type(proto) is dict:
                    lst.extend({"price": f"{1000 + i * 0.01:.2f}", "size": "1.5"} for i in range(n))
                else:
                    lst.extend([f"{1000 + i * 0.01:.2f}", "1.5"] for i in range(n))
                st.src = orjson.dumps(holder[0])
                return
            kind = 1
        if kind == 1:
            holder = [st.decoded()]
            if type(holder[0]) is dict:
                holder[0]["zz"] = "x" * HUGE_BYTES
            st.src = orjson.dumps(holder[0])
        elif kind == 2:
            st.src = b"[" * (HUGE_BYTES // 2) + b"]" * (HUGE_BYTES // 2)
        elif kind == 3:
            st.src = b" " * HUGE_BYTES + (st.src or b"")
        elif kind == 4:
            text = (st.src or b"").decode("utf-8", "replace")
            st.src = re.sub(r'"(\d+\.\d+)"', '"' + "9" * HUGE_BYTES + '"', text, count=1).encode()
        else:
            st.src = rng.randbytes(HUGE_BYTES)
        st.obj, st.parsed = None, False

    def run(self, steps: list[Step]) -> None:
        feed = self.make_feed(steps[0][1])
        checker = self.checker
        feed.sink = CheckingSink(checker, self.name)
        errors = self.errors
        examples = self.error_examples

        def error(reason: str, data: Any = None) -> None:  # count why inputs were skipped
            key = _reason(reason)
            errors[key] += 1
            if key not in examples:
                examples[key] = reason[:300]
            feed.stats.errors += 1

        feed.error = error
        for kind, data in steps[1:]:
            if kind == "connect":
                feed.deliver_connect(1)
            elif kind == "frame":
                self.frames += 1
                feed.deliver_frame(data, 2)
            elif kind == "tframe":  # Binance USD-M: the trades connection's own entry point
                self.frames += 1
                (getattr(feed, "trades_connection", None) or feed).deliver_frame(data, 2)
            elif kind == "rest":
                feed.deliver_rest(data[0], data[1], 3)

    def minimise(self, steps: list[Step], signature: str, budget: int = 300) -> list[Step]:
        def fails(cand: list[Step]) -> bool:
            nonlocal budget
            budget -= 1
            self.checker.clear()
            try:
                self.run(cand)
            except Exception:
                return False
            return any(sig == signature for sig, _ in self.checker.violations)

        best = list(steps)
        changed = True
        while changed and budget > 0:
            changed = False
            for i in range(len(best) - 1, 0, -1):  # step 0 is the config
                cand = best[:i] + best[i + 1 :]
                if budget > 0 and fails(cand):
                    best, changed = cand, True
        # then shrink list elements inside JSON frames
        for i in range(1, len(best)):
            kind, data = best[i]
            raw = data[1] if kind == "rest" else data
            if raw is None or len(raw) > 65536:
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            lists = [e[2] for e in _walk([obj]) if type(e[2]) is list]
            for lst in lists:
                j = len(lst) - 1
                while j >= 0 and budget > 0:
                    saved = lst.pop(j)
                    text = orjson.dumps(obj).decode() if isinstance(raw, str) else orjson.dumps(obj)
                    cand = list(best)
                    cand[i] = (kind, [data[0], text]) if kind == "rest" else (kind, text)
                    if fails(cand):
                        best = cand
                    else:
                        lst.insert(j, saved)
                    j -= 1
        self.checker.clear()
        return best


# -- Binance ----------------------------------------------------------------------------------------------
class BinanceTarget(VenueTarget):
    name = "binance"
    SESSIONS = {
        "spot": ("seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl", "100ms"),
        "usdm": ("seq_usdm_btcusdt_2024-08-08_hftbacktest_first1000.jsonl", "0ms"),
    }

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from latentspeed_exchange_binance.config import BinanceConfig

        d = fixtures_dir() / "binance"
        self.configs = {}
        self.sessions: dict[str, tuple[list[bytes], list[tuple[int, bytes]], bytes, list[bytes]]] = {}
        noise: list[bytes] = []
        for market, (name, speed) in self.SESSIONS.items():
            self.configs[market] = BinanceConfig(market=market, symbols=["BTC-USDT"], depth_speed=speed)
            lines = [ln for ln in (d / name).read_bytes().splitlines() if ln.strip()]
            rest = next(ln for ln in lines if ln.startswith(b'{"lastUpdateId"'))
            frames = [ln for ln in lines if ln is not rest and b"bookTicker" not in ln]
            noise += [ln for ln in lines if b"bookTicker" in ln][:20]
            snap = orjson.loads(rest)
            lid = snap["lastUpdateId"]
            bids, asks = _NaiveSide(snap["bids"]), _NaiveSide(snap["asks"])
            points = []  # (frame index of a depth event, a venue snapshot taken right after it)
            for i, ln in enumerate(frames):
                if b'"depthUpdate"' not in ln:
                    continue
                ev = orjson.loads(ln)["data"]
                if ev["u"] > lid or (market == "usdm" and ev["u"] == lid):
                    bids.apply(ev["b"])
                    asks.apply(ev["a"])
                    body = {"lastUpdateId": ev["u"], "bids": bids.top(SNAPSHOT_DEPTH, True),
                            "asks": asks.top(SNAPSHOT_DEPTH, False)}  # fmt: skip
                    if market == "usdm":
                        body = {"lastUpdateId": ev["u"], "E": ev["E"], "T": ev["T"], **body}
                    points.append((i, orjson.dumps(body)))
            head = [ln for ln in lines[: lines.index(rest) + 8] if b"bookTicker" not in ln]
            self.sessions[market] = (frames, points, rest, head)
        noise += _fixture_objects(d, "ws_*.json") + _fixture_objects(d / "docs")
        noise += [ln for ln in (d / "docs/ws_error_responses.jsonl").read_bytes().splitlines() if ln.strip()]
        self.setup_corpus([f for s in self.sessions.values() for f in s[0][:200]], noise)

    def make_feed(self, key: str) -> Any:
        from latentspeed_exchange_binance.feed import BinanceFeed

        return BinanceFeed(self.configs[key])

    def scenario(self, rng: random.Random) -> tuple[str, list[_PStep]]:
        market = rng.choice(("spot", "usdm"))
        frames, points, rest, head = self.sessions[market]
        plan = [_PStep("connect")]
        if rng.random() < 0.03:  # the recorded start: first frames, the full 1000-level snapshot, more frames
            cut = rng.randrange(len(head))
            plan += [_PStep("frame", f) for f in head[:cut]]
            plan.append(_PStep("rest", rest, key="BTCUSDT"))
            plan += [_PStep("frame", f) for f in head[cut:]]
            return market, self._route(market, plan)
        i, snap = rng.choice(points)
        window = frames[i : i + rng.randint(2, 12)]
        if rng.random() < 0.7:  # the event that made the book buffered first, then the snapshot
            plan += [_PStep("frame", window[0]), _PStep("rest", snap, key="BTCUSDT")]
            plan += [_PStep("frame", f) for f in window[1:]]
        else:
            plan.append(_PStep("rest", snap, key="BTCUSDT"))
            plan += [_PStep("frame", f) for f in window]
        if rng.random() < 0.1:
            plan.insert(rng.randrange(1, len(plan) + 1), _PStep("frame", rng.choice(self.noise)))
        return market, self._route(market, plan)

    @staticmethod
    def _route(market: str, plan: list[_PStep]) -> list[_PStep]:
        """USD-M trades arrive on their own connection (the ``/market`` route), which hands them on."""
        if market == "usdm":
            for st in plan:
                if st.kind == "frame" and st.src is not None and b'"e":"trade"' in st.src:
                    st.kind = "tframe"
        return plan


# -- Bybit ------------------------------------------------------------------------------------------------
class BybitTarget(VenueTarget):
    name = "bybit"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from latentspeed_exchange_bybit.config import BybitConfig

        d = fixtures_dir() / "bybit"
        self.configs = {
            "xrp500": BybitConfig(symbols=["XRP-USDT"], depth=500),
            "btc1": BybitConfig(symbols=["BTC-USDT"], depth=1),
            "btc50": BybitConfig(symbols=["BTC-USDT"], depth=50),
        }

        def lines(path: Path) -> list[bytes]:
            return [orjson.dumps(orjson.loads(ln)) for ln in path.read_bytes().splitlines() if ln.strip()]

        xrp = lines(d / "seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl")
        snap = orjson.loads(xrp[0])
        bids, asks = _NaiveSide(snap["data"]["b"]), _NaiveSide(snap["data"]["a"])
        self.xrp_deltas = xrp[1:]
        self.xrp_points: list[bytes] = []  # a snapshot of the book before delta j, trimmed
        for j in range(len(xrp)):
            if j:
                prev = orjson.loads(xrp[j])
                bids.apply(prev["data"]["b"])
                asks.apply(prev["data"]["a"])
                src = prev
            else:
                src = snap
            s = copy.deepcopy(snap)
            s["ts"] = src["ts"]
            s["data"].update(
                b=bids.top(SNAPSHOT_DEPTH, True), a=asks.top(SNAPSHOT_DEPTH, False),
                u=src["data"]["u"], seq=src["data"]["seq"],
            )  # fmt: skip
            self.xrp_points.append(orjson.dumps(s))
        self.btc1 = lines(
            d / "unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl"
        )
        self.btc_trades = [
            orjson.dumps(_load(d / p))
            for p in (
                "unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json",
                "docs/ws_publicTrade_btcusdt.json",
                "derived/tardis_spot_00_publicTrade_BTCUSDT_snapshot.json",
                "ws_spot_publicTrade_btcusdt_2023_bbgo.json",
            )
        ]
        self.btc50_snaps = [
            orjson.dumps(_load(d / p))
            for p in (
                "derived/tardis_spot_04_orderbook_50_BTCUSDT_snapshot.json",
                "unattributed/ws_linear_orderbook50_snapshot_btcusdt_TRIMMED_to_3_levels_B.json",
            )
        ]
        self.btc50_deltas = [
            orjson.dumps(_load(d / p))
            for p in (
                "derived/tardis_spot_05_orderbook_50_BTCUSDT_delta.json",
                "docs/ws_linear_orderbook50_delta_btcusdt.json",
                "ws_spot_orderbook50_delta_btcusdt_2023_bbgo.json",
            )
        ]
        noise = (
            _fixture_objects(d / "unattributed")
            + _fixture_objects(d / "derived")
            + _fixture_objects(d / "docs")
        )
        noise += [orjson.dumps(_load(p)) for p in sorted(d.glob("ws_*pong*.json"))]
        noise.append(orjson.dumps(_load(d / "ws_spot_subscribe_response_bbgo.json")))
        self.setup_corpus(self.xrp_points[:3] + self.xrp_deltas + self.btc1 + self.btc_trades, noise)

    def make_feed(self, key: str) -> Any:
        from latentspeed_exchange_bybit.feed import BybitFeed

        return BybitFeed(self.configs[key])

    def scenario(self, rng: random.Random) -> tuple[str, list[_PStep]]:
        plan = [_PStep("connect")]
        r = rng.random()
        if r < 0.5:
            key = "xrp500"
            j = rng.randrange(len(self.xrp_points))
            plan.append(_PStep("frame", self.xrp_points[j]))
            plan += [_PStep("frame", f) for f in self.xrp_deltas[j : j + rng.randint(1, 6)]]
        elif r < 0.8:
            key = "btc1"
            frames = list(self.btc1[: rng.randint(1, len(self.btc1))])
            for _ in range(rng.randint(0, 2)):
                frames.insert(rng.randrange(1, len(frames) + 1), rng.choice(self.btc_trades))
            plan += [_PStep("frame", f) for f in frames]
        else:
            key = "btc50"
            plan.append(_PStep("frame", rng.choice(self.btc50_snaps)))
            extra = self.btc50_deltas[: rng.randint(1, 3)] + rng.sample(self.btc_trades, rng.randint(0, 2))
            rng.shuffle(extra)
            plan += [_PStep("frame", f) for f in extra]
        if rng.random() < 0.1:
            plan.insert(rng.randrange(1, len(plan) + 1), _PStep("frame", rng.choice(self.noise)))
        return key, plan


# -- dYdX -------------------------------------------------------------------------------------------------
class DydxTarget(VenueTarget):
    name = "dydx"
    SHIFT = -997.0  # moves the recorded 100x100 snapshot onto the recorded updates' price range

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from latentspeed_exchange_dydx.config import DydxConfig

        d = fixtures_dir() / "dydx"
        self.configs = {"eth": DydxConfig(symbols=["ETH-USD"])}
        snap = _load(d / "ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json")
        for side in ("bids", "asks"):
            snap["contents"][side] = snap["contents"][side][: SNAPSHOT_DEPTH // 2]
        snap["message_id"] = 1
        shifted = copy.deepcopy(snap)
        for side in ("bids", "asks"):
            for lvl in shifted["contents"][side]:
                lvl["price"] = f"{float(lvl['price']) + self.SHIFT:.1f}"
        self.snapshots = [orjson.dumps(shifted), orjson.dumps(snap)]
        batch = _load(d / "ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json")
        batch["message_id"] = 2
        self.batch = orjson.dumps(batch)
        self.singles = []
        for i, contents in enumerate(batch["contents"]):
            msg = {k: v for k, v in batch.items() if k != "contents"}
            msg.update(type="channel_data", message_id=2 + i, contents=contents)
            self.singles.append(orjson.dumps(msg))
        self.trades = [
            orjson.dumps(_load(d / p))
            for p in ("ws_v4_trades_channel_data_eth-usd_nautilus.json",
                      "ws_v4_trades_channel_data_eth-usd_deleveraged_nautilus.json")
        ]  # fmt: skip
        self.connected = orjson.dumps(_load(d / "ws_connected_nautilus.json"))
        seq = d / "unattributed/seq_v4_orderbook_eth-usd_connected_subscribed_batch.jsonl"
        self.recorded = [orjson.dumps(orjson.loads(ln)) for ln in seq.read_bytes().splitlines() if ln.strip()]
        noise = [
            orjson.dumps(_load(p))
            for p in sorted(d.glob("ws_*.json"))
            if "orderbook_subscribed" not in p.name
            and "batch" not in p.name
            and "candles_subscribed" not in p.name
        ]
        noise += _fixture_objects(d / "derived") + _fixture_objects(d / "docs")
        self.setup_corpus(self.snapshots + self.singles[:10] + self.trades + self.recorded, noise)

    def make_feed(self, key: str) -> Any:
        from latentspeed_exchange_dydx.feed import DydxFeed

        return DydxFeed(self.configs[key])

    def scenario(self, rng: random.Random) -> tuple[str, list[_PStep]]:
        plan = [_PStep("connect")]
        if rng.random() < 0.15:
            plan += [_PStep("frame", f) for f in self.recorded]
        else:
            if rng.random() < 0.5:
                plan.append(_PStep("frame", self.connected))
            plan.append(_PStep("frame", self.snapshots[0] if rng.random() < 0.7 else self.snapshots[1]))
            if rng.random() < 0.2:
                plan.append(_PStep("frame", self.batch))
            else:
                i = rng.randrange(len(self.singles))
                plan += [_PStep("frame", f) for f in self.singles[i : i + rng.randint(1, 6)]]
            for _ in range(rng.randint(0, 2)):
                plan.insert(rng.randrange(1, len(plan) + 1), _PStep("frame", rng.choice(self.trades)))
        if rng.random() < 0.1:
            plan.insert(rng.randrange(1, len(plan) + 1), _PStep("frame", rng.choice(self.noise)))
        return "eth", plan


# -- the mock exchange's binary protocol ----------------------------------------------------------------
#: Field layouts (offset, struct format) per message type, as docs/protocol.md states them.
_HEADER_FIELDS = ((0, "H"), (2, "H"), (4, "I"), (8, "Q"))
_BODY_FIELDS = {
    1: ((16, "I"), (20, "H")),
    2: ((16, "Q"), (24, "Q"), (32, "Q"), (40, "I"), (44, "B"), (45, "B"), (46, "q"), (54, "q"), (62, "q"),
        (70, "q"), (78, "H")),
    3: ((16, "Q"), (24, "I"), (28, "B"), (29, "B"), (30, "B"), (31, "q"), (39, "q")),
    4: ((16, "Q"), (24, "Q"), (32, "I")),
    5: (),
    6: ((16, "I"), (20, "q"), (28, "q"), (36, "16s")),
    7: ((16, "I"), (20, "q"), (28, "q"), (36, "B"), (37, "Q")),
}  # fmt: skip
_SPECIALS: dict[str, tuple[Any, ...]] = {
    "B": (0, 1, 2, 3, 4, 5, 7, 127, 255),
    "H": (0, 1, 8, 15, 16, 17, 21, 22, 40, 0xFFFF, 0x7FFF),
    "I": (0, 1, 2, 3, 4, 9, 0xFFFFFFFF, 2**31),
    "Q": (0, 1, 2, 2**63, 2**64 - 1, 12345),
    "q": (0, -1, 1, -(2**63), 2**63 - 1, -500_000_000, -5 * 10**12, 10**18, 3, 5_000_000_000_000),
    "16s": (b"", b"\xff" * 16, b"BTC-USD", b"ETH-USD", b"A" * 16, b"\x00" * 16, b"\xe9t\xe9\x00"),
}
_SYMBOLS = (  # symbol_id, name, price, tick, lot
    (1, "BTC-USD", 50_000.0, 0.5, 0.0001),
    (2, "ETH-USD", 3_000.0, 0.05, 0.001),
    (3, "SOL-USD", 150.0, 0.01, 0.01),
)
_ZEROS = bytes(65536)  # a zero header is malformed: the server closes once it has read everything before it


def _proto() -> Any:
    from latentspeed_mock_exchange import protocol

    return protocol


def _mutate_messages(rng: random.Random, msgs: list[bytearray], types: tuple[int, ...]) -> None:
    """Binary, structure-aware: header and body fields, MARKET_DATA entries, lengths, seqs, message order."""
    try:
        _mutate_one(rng, msgs, types)
    except (struct.error, IndexError, ValueError):
        pass  # this message no longer has the field (an earlier mutation cut it)


def _mutate_one(rng: random.Random, msgs: list[bytearray], types: tuple[int, ...]) -> None:
    P = _proto()
    op = rng.randrange(12)
    i = rng.randrange(len(msgs))
    m = msgs[i]
    t = struct.unpack_from("<H", m, 2)[0] if len(m) >= 4 else 0
    if op <= 2:  # a body or header field to a special value
        fields = _BODY_FIELDS.get(t, ()) if op < 2 else _HEADER_FIELDS
        fields = tuple(f for f in fields if f[0] + struct.calcsize("<" + f[1]) <= len(m)) or _HEADER_FIELDS
        off, fmt = rng.choice(fields)
        if len(m) >= off + struct.calcsize("<" + fmt):
            struct.pack_into("<" + fmt, m, off, rng.choice(_SPECIALS[fmt]))
    elif op == 3 and t == 1 and len(m) >= P.MD_HEAD_SIZE + P.MD_ENTRY_SIZE:  # a MARKET_DATA entry
        n = (len(m) - P.MD_HEAD_SIZE) // P.MD_ENTRY_SIZE
        off = P.MD_HEAD_SIZE + rng.randrange(n) * P.MD_ENTRY_SIZE
        what = rng.randrange(5)
        if what == 0:
            struct.pack_into("<q", m, off, rng.choice(_SPECIALS["q"]))
        elif what == 1:
            struct.pack_into("<q", m, off + 8, rng.choice(_SPECIALS["q"]))
        elif what == 2:
            m[off + 16] = rng.choice(_SPECIALS["B"])
        elif what == 3 and n > 1:  # swap two entries (unordered, or a bid among the asks)
            off2 = P.MD_HEAD_SIZE + rng.randrange(n) * P.MD_ENTRY_SIZE
            a, b = bytes(m[off : off + 18]), bytes(m[off2 : off2 + 18])
            m[off : off + 18], m[off2 : off2 + 18] = b, a
        else:  # crossed: a bid at or above the best ask (or the reverse)
            p = struct.unpack_from("<q", m, off)[0]
            p += rng.choice((1, -1)) * rng.randint(1, 40) * 5_000_000
            struct.pack_into("<q", m, off, max(-(2**63), min(2**63 - 1, p)))
    elif op == 4:  # the declared length off by a little (or zero/short)
        if len(m) >= 2:
            n = struct.unpack_from("<H", m, 0)[0]
            new = rng.choice((0, 1, 15, 16, 21, 22, n - 1, n + 1, n + 18, n - 18, 0xFFFF))
            struct.pack_into("<H", m, 0, max(0, min(0xFFFF, new)))
    elif op == 5 and t == 1 and len(m) >= 22:  # num_entries, with or without a matching length
        n = struct.unpack_from("<H", m, 20)[0]
        new = max(0, min(0xFFFF, rng.choice((0, n - 1, n + 1, 0xFFFF, n * 2))))
        struct.pack_into("<H", m, 20, new)
        if rng.random() < 0.5:
            struct.pack_into("<H", m, 0, min(0xFFFF, P.MD_HEAD_SIZE + new * P.MD_ENTRY_SIZE))
    elif op == 6:  # a zero or short declared length for any type: the decoder must stop, not spin
        length = rng.choice((0, 1, 8, 15, 16, 17, 20, 21))
        mt = rng.choice((1, 1, 1, *types, 0, 8, 0xFFFF))
        bad = bytearray(struct.pack("<HHIQ", length, mt, rng.randint(0, 5), 0))
        if rng.random() < 0.5:
            bad += rng.randbytes(rng.randint(0, 40))
        msgs.insert(rng.randrange(len(msgs) + 1), bad)
    elif op == 7:  # sequence numbers out of order
        if len(msgs) > 1 and rng.random() < 0.5:
            j = rng.randrange(len(msgs))
            if len(m) >= 8 and len(msgs[j]) >= 8:
                a, b = m[4:8], msgs[j][4:8]
                m[4:8], msgs[j][4:8] = b, a
        elif len(m) >= 8:
            s = struct.unpack_from("<I", m, 4)[0]
            struct.pack_into(
                "<I", m, 4, rng.choice((0, max(0, s - 1), s, min(s + 2, 0xFFFFFFFF), 0xFFFFFFFF))
            )
    elif op == 8:
        msgs.insert(rng.randrange(len(msgs) + 1), bytearray(msgs[i]))
    elif op == 9 and len(msgs) > 1:
        del msgs[i]
    elif op == 10 and len(msgs) > 1:
        j = rng.randrange(len(msgs))
        msgs[i], msgs[j] = msgs[j], msgs[i]
    else:  # a message of another type (or an unknown one) with this one's body
        if len(m) >= 4:
            struct.pack_into("<H", m, 2, rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 99, 0xFFFF)))


def _split_reads(rng: random.Random, stream: bytes) -> list[bytes]:
    """Cut a byte stream into TCP reads: whole, a few pieces, or byte by byte at the start."""
    r = rng.random()
    if r < 0.5 or len(stream) < 2:
        return [stream]
    if r < 0.9:
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(1, 4))))
        return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    n = min(len(stream), rng.randint(1, 40))
    return [stream[i : i + 1] for i in range(n)] + ([stream[n:]] if n < len(stream) else [])


def split_declared(stream: bytes, limit: int = 20_000) -> list[bytes]:
    """Cut a byte stream at its declared lengths (at least one byte per piece): what a replay delivers."""
    out = []
    off = 0
    while off < len(stream) and len(out) < limit:
        n = struct.unpack_from("<H", stream, off)[0] if len(stream) - off >= 2 else 1
        out.append(stream[off : off + max(n, 1)])
        off += max(n, 1)
    return out


_TYPE_NAMES = {1: "MARKET_DATA", 2: "EXECUTION_REPORT", 3: "NEW_ORDER", 4: "CANCEL_ORDER", 5: "HEARTBEAT",
               6: "SECURITY_DEFINITION", 7: "TRADE"}  # fmt: skip


def describe_mock(stream: bytes) -> list[str]:
    """Each declared-length piece of a mock-protocol stream with its header and body fields."""
    out = []
    for m in split_declared(stream, 200):
        if len(m) < 16:
            out.append(f"{len(m)} bytes: {m.hex()}")
            continue
        length, t, seq, _ts = struct.unpack_from("<HHIQ", m, 0)
        fields = []
        for off, fmt in _BODY_FIELDS.get(t, ()):
            if off + struct.calcsize("<" + fmt) <= len(m):
                fields.append(str(struct.unpack_from("<" + fmt, m, off)[0]))
        if t == 1 and len(m) >= 22:
            entries = list(struct.iter_unpack("<qqBB", m[22 : 22 + (len(m) - 22) // 18 * 18]))
            fields.append(f"entries(price,qty,side,level)={entries}")
        name = _TYPE_NAMES.get(t, f"type {t}")
        out.append(f"{name} len={length} seq={seq} [{', '.join(fields)}] ({len(m)} bytes)")
    return out


class MockClientTarget(Target):
    """Exchange-to-client bytes through the client side: ExchangeLink + MockFeed/MockVenue, replay, decoders."""

    name = "mock-client"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from latentspeed_mock_exchange.config import MockFeedConfig

        self.P = _proto()
        self.feed_configs = [MockFeedConfig(), MockFeedConfig(symbols=["BTC-USD", "ETH-USD"])]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.extra["decode_book_compared"] = 0

    # -- inputs -----------------------------------------------------------------------------------------
    def _valid_stream(self, rng: random.Random) -> list[bytearray]:
        P = self.P
        ts = 1_733_011_200_000_000_000 + rng.randrange(10**12)
        seq = 0
        msgs: list[bytearray] = []
        syms = _SYMBOLS[: rng.randint(1, 3)]
        for sid, name, _px, tick, lot in syms:
            seq += 1
            msgs.append(
                bytearray(P.encode_security_definition(seq, ts, sid, P.to_fixed(tick), P.to_fixed(lot), name))
            )
        trade_id = rng.randrange(1, 10**6)
        for _ in range(rng.randint(1, 10)):
            seq += 1
            sid, _name, px, tick, lot = rng.choice(syms)
            t = P.to_fixed(tick)
            mid = round(px * (1 + rng.uniform(-0.01, 0.01)) / tick)
            kind = rng.choices(("md", "trade", "hb", "exec"), (6, 2, 1, 2))[0]
            if kind == "md":
                spread = rng.randint(1, 4)
                nb, na = rng.randint(0, 10), rng.randint(0, 10)
                bids = [((mid - i) * t, rng.randint(1, 5000) * P.to_fixed(lot)) for i in range(nb)]
                asks = [((mid + spread + i) * t, rng.randint(1, 5000) * P.to_fixed(lot)) for i in range(na)]
                msgs.append(bytearray(P.encode_market_data(seq, ts, sid, bids, asks)))
            elif kind == "trade":
                trade_id += 1
                q = rng.randint(1, 100) * P.to_fixed(lot)
                msgs.append(bytearray(P.encode_trade(seq, ts, sid, mid * t, q, rng.randint(0, 1), trade_id)))
            elif kind == "hb":
                msgs.append(bytearray(P.encode_heartbeat(seq, ts)))
            else:
                q = rng.randint(1, 100) * P.to_fixed(lot)
                et = rng.randrange(5)
                fill = et in (1, 2)
                msgs.append(bytearray(P.encode_execution_report(
                    seq, ts, rng.randint(1, 50), rng.randint(1, 10**6), rng.randint(1, 10**6), sid, rng.randint(0, 1),
                    et, mid * t if fill else 0, q if fill else 0, 0 if et >= 2 else q, q if et == 2 else 0,
                    rng.randint(1, 6) if et == 4 else 0,
                )))  # fmt: skip
            ts += rng.randint(0, 10**7)
        return msgs

    def generate(self, index: int) -> list[Step]:
        rng = self.rng(index)
        steps: list[Step] = [("config", rng.randrange(len(self.feed_configs)))]
        if index % HUGE_EVERY[self.name] == HUGE_OFFSET:
            msgs = self._valid_stream(rng)
            one = bytes(max(msgs, key=len))
            body = b"".join(bytes(m) for m in msgs) + one * (HUGE_BYTES // len(one))
            if rng.random() < 0.3:
                body = rng.randbytes(HUGE_BYTES)
            steps += [("read", body[i : i + 65536]) for i in range(0, len(body), 65536)]
            return steps
        msgs = self._valid_stream(rng)
        if rng.random() >= 0.04:
            for _ in range(1 + (rng.random() < 0.4) + (rng.random() < 0.15)):
                _mutate_messages(rng, msgs, (1, 2, 5, 6, 7))
        stream = b"".join(bytes(m) for m in msgs)
        if rng.random() < 0.15:
            stream = mutate_bytes(rng, stream, [])
        steps += [("read", r) for r in _split_reads(rng, stream)]
        return steps

    def minimise(self, steps: list[Step], signature: str, budget: int = 300) -> list[Step]:
        """One read; drop whole messages (cut at their declared lengths) while ``signature`` still shows."""
        msgs = split_declared(b"".join(d for k, d in steps if k == "read"))

        def fails(cand: list[bytes]) -> bool:
            self.checker.clear()
            try:
                self.run([steps[0], ("read", b"".join(cand))])
            except Exception:
                return False
            return any(sig == signature for sig, _ in self.checker.violations)

        if not fails(msgs):
            return steps
        for i in range(len(msgs) - 1, -1, -1):
            if budget <= 0:
                break
            budget -= 1
            cand = msgs[:i] + msgs[i + 1 :]
            if cand and fails(cand):
                msgs = cand
        return [steps[0], ("read", b"".join(msgs))]

    def describe(self, steps: list[Step]) -> list[str]:
        return [f"config {steps[0][1]!r}", *describe_mock(b"".join(d for k, d in steps if k == "read"))]

    # -- running -------------------------------------------------------------------------------------------
    def run(self, steps: list[Step]) -> None:
        if self.loop is None or self.loop.is_closed():
            self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._run(steps))
        except BaseException:
            self.loop.close()  # interrupted inside the loop: never reuse it
            self.loop = None
            raise
        self._replay_and_compare(steps)

    async def _run(self, steps: list[Step]) -> None:
        from latentspeed_mock_exchange.client import ExchangeLink
        from latentspeed_mock_exchange.feed import MockFeed
        from latentspeed_mock_exchange.venue import MockVenue

        checker = self.checker
        reads = [d for k, d in steps if k == "read"]
        self.frames += len(reads)
        feed = MockFeed(self.feed_configs[steps[0][1]])
        feed.sink = CheckingSink(checker, "feed")
        self._count_errors(feed)
        link = ExchangeLink("fuzz feed", feed._on_frames)
        feed._on_link(link)
        self._drive(link, reads)

        venue = MockVenue()
        listener = _VenueListener(checker)
        venue._listener = listener
        venue._on_md = listener.on_market_data
        venue._on_stale_md = listener.on_superseded_market_data
        venue._on_trade = listener.on_venue_trade
        vlink = ExchangeLink("fuzz venue", venue._on_frames)
        venue._up(vlink)
        self._drive(vlink, reads)
        venue._down(vlink, "end of input")

    @staticmethod
    def _drive(link: Any, reads: list[bytes]) -> None:
        transport = _FakeTransport()
        link.connection_made(transport)
        for data in reads:
            if transport.closed:  # the client closed the connection (malformed frame): nothing more is read
                break
            link.data_received(data)
        link.connection_lost(None)

    def _count_errors(self, feed: Any) -> None:
        errors = self.errors
        examples = self.error_examples

        def error(reason: str, data: Any = None) -> None:
            key = _reason(reason)
            errors[key] += 1
            if key not in examples:
                examples[key] = reason[:300]
            feed.stats.errors += 1

        feed.error = error

    def _replay_and_compare(self, steps: list[Step]) -> None:
        """The replay path (one declared-length message per ``deliver_frame``) and compiled vs Python decode_book."""
        from latentspeed_mock_exchange.feed import MockFeed

        P = self.P
        stream = b"".join(d for k, d in steps if k == "read")
        feed = MockFeed(self.feed_configs[steps[0][1]])
        feed.sink = CheckingSink(self.checker, "replay")
        self._count_errors(feed)
        feed.deliver_connect(1)
        fast = getattr(P, "_fastproto", None) is not None
        for msg in split_declared(stream):
            feed.deliver_frame(msg, 2)
            if fast and len(msg) >= P.MD_HEAD_SIZE and msg[2] == 1 and msg[3] == 0:
                try:
                    ok = P.check_frame(msg, 0, len(msg)) == len(msg)
                except P.ProtocolError:
                    ok = False
                if ok:
                    self.extra["decode_book_compared"] += 1
                    a, b = _decode_or_refuse(P.decode_book, msg), _decode_or_refuse(P._decode_book_py, msg)
                    if a != b:
                        self.checker.fail(
                            "decode_book", "compiled and Python results differ", f"{a!r} != {b!r}"
                        )


def _decode_or_refuse(decode: Callable[..., Any], msg: bytes) -> Any:
    """A decoder's result, or its documented refusal (ProtocolError) as a comparable value."""
    P = _proto()
    try:
        return decode(msg, 0)
    except P.ProtocolError as exc:
        return ("refused", type(exc).__name__)


class _FakeTransport:
    """The few transport calls ExchangeLink makes; ``abort`` means the client closed the connection."""

    def __init__(self) -> None:
        self.closed = False
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 9000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _VenueListener:
    """What the engine would get from MockVenue, checked."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    def on_execution_report(self, report: Any) -> None:
        self.checker.report("venue", report)

    def on_venue_connected(self) -> None:
        pass

    def on_venue_disconnected(self, reason: str) -> None:
        pass

    def on_market_data(self, symbol: str, bids: list, asks: list, receipt_ns: int) -> None:
        self.checker.levels(f"venue {symbol}", bids, asks)

    def on_superseded_market_data(self, symbol: str, bids: list, asks: list, receipt_ns: int) -> None:
        self.checker.levels(f"venue {symbol} (superseded)", bids, asks)

    def on_venue_trade(self, trade: Any) -> None:
        self.checker.trade(f"venue {trade.symbol}", trade)


# -- the mock exchange server ------------------------------------------------------------------------------
class MockServerTarget(Target):
    """Mutated client streams into a real ``latentspeed mock-exchange`` process, one connection per input."""

    name = "mock-server"
    cpu_watchdog = False

    def __init__(self, seed: int, io_timeout: float = 5.0, max_rss_mb: float = 1024.0) -> None:
        super().__init__(seed)
        self.P = _proto()
        self.io_timeout = io_timeout
        self.max_rss_mb = max_rss_mb
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="latentspeed-fuzz-"))
        self.log_path = self.tmp / "mock-exchange.log"
        self.log_bytes = 0
        self.rss_mb: list[float] = []
        self.restarts = 0
        self.runs = 0
        self.on_server_start: Callable[[int], None] | None = None
        self.extra.update(server_restarts=0, server_rss_mb={}, server_log_bytes=0, received_bytes=0)

    # -- server lifecycle ---------------------------------------------------------------------------------
    def start_server(self) -> None:
        for _attempt in range(5):
            self.port = free_port()
            log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
            cmd = [
                str(Path(sys.executable).parent / "latentspeed"), "mock-exchange", "--port", str(self.port),
                "--seed", "1", "--log-level", "warning",
            ]  # fmt: skip
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            if self.on_server_start is not None:
                self.on_server_start(self.proc.pid)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._probe(1.0):
                    self.rss_mb.append(self._rss())
                    return
                time.sleep(0.05)
            self.stop_server()
        raise RuntimeError(f"the mock exchange did not start; log: {self.log_path}")

    def stop_server(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop_server()
        self._account_log()
        self.extra.update(server_log_bytes=self.log_bytes, server_restarts=self.restarts)
        try:
            self.log_path.unlink(missing_ok=True)
            self.tmp.rmdir()
        except OSError:
            pass

    def _rss(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:  # type: ignore[union-attr]
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, AttributeError):
            return 0.0

    def _account_log(self) -> None:
        try:
            size = self.log_path.stat().st_size
        except OSError:
            return
        self.log_bytes += size
        os.truncate(self.log_path, 0)  # the server appends (O_APPEND): keep the disk clean

    def _probe(self, timeout: float, ticks: bool = False) -> bool:
        """A fresh well-formed client gets the SECURITY_DEFINITIONs within ``timeout`` (with ``ticks``:
        and then MARKET_DATA from two different ticks, so the market-data loop still runs)."""
        P = self.P
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(P.encode_heartbeat(1, time.time_ns()))
                dec = P.FrameDecoder()
                deadline = time.monotonic() + timeout
                secdef = False
                md_times: set[int] = set()
                while time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        return False
                    for t, buf, off in dec.feed(chunk):
                        secdef = secdef or t == P.SECURITY_DEFINITION
                        if t == P.MARKET_DATA:
                            md_times.add(P.unpack_header(buf, off)[3])
                    if secdef and (not ticks or len(md_times) >= 2):
                        return True
                return False
        except (OSError, ValueError):
            return False

    # -- inputs ----------------------------------------------------------------------------------------------
    def generate(self, index: int) -> list[Step]:
        P = self.P
        rng = self.rng(index)
        ts = 1_733_011_200_000_000_000  # fixed: an input depends on (seed, index) only
        msgs: list[bytearray] = []
        seq = 0
        for _ in range(rng.randint(1, 8)):
            seq += 1
            kind = rng.choices(("new", "cancel", "hb"), (6, 2, 1))[0]
            sid, _name, px, tick, lot = rng.choice(_SYMBOLS[:2])
            cl = rng.randint(1, 40)
            if kind == "new":
                ot, tif = rng.randint(0, 1), rng.randint(0, 2)
                price = round(px * (1 + rng.uniform(-0.002, 0.002)) / tick) * P.to_fixed(tick)
                qty = rng.randint(1, 20) * P.to_fixed(lot)
                msgs.append(
                    bytearray(P.encode_new_order(seq, ts, cl, sid, rng.randint(0, 1), ot, tif, price, qty))
                )
            elif kind == "cancel":
                msgs.append(bytearray(P.encode_cancel(seq, ts, cl + 100, cl, sid)))
            else:
                msgs.append(bytearray(P.encode_heartbeat(seq, ts)))
        if index % HUGE_EVERY[self.name] == HUGE_OFFSET:
            kind = rng.randrange(3)
            one = bytes(msgs[0])
            if kind == 0:
                stream = (one * (HUGE_BYTES // len(one)))[:HUGE_BYTES]
            elif kind == 1:
                stream = P.encode_heartbeat(1, ts) * (HUGE_BYTES // P.HEARTBEAT_SIZE)
            else:
                stream = rng.randbytes(HUGE_BYTES)
            return [("send", stream[i : i + (1 << 20)]) for i in range(0, len(stream), 1 << 20)]
        if rng.random() >= 0.04:
            for _ in range(1 + (rng.random() < 0.4) + (rng.random() < 0.15)):
                _mutate_messages(rng, msgs, (3, 4, 5, 1, 2))
        stream = b"".join(bytes(m) for m in msgs)
        if rng.random() < 0.15:
            stream = mutate_bytes(rng, stream, [])
        return [("send", s) for s in _split_reads(rng, stream)]

    # -- running --------------------------------------------------------------------------------------------
    def run(self, steps: list[Step]) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.restarts += 1
            self.start_server()
        self.runs += 1
        if self.runs % 1000 == 0 and not self._probe(self.io_timeout, ticks=True):
            self.stop_server()
            raise Hang("a fresh client gets no MARKET_DATA ticks from the mock exchange")
        if self.runs % 200 == 0:
            rss = self._rss()
            self.rss_mb.append(rss)
            self._account_log()
            if rss > self.max_rss_mb:
                self.stop_server()
                raise Hang(f"mock exchange RSS {rss:.0f} MB above {self.max_rss_mb:.0f} MB")
        received = self._session([d for k, d in steps if k == "send"])
        if self.proc.poll() is not None:  # type: ignore[union-attr]
            raise ServerDied(f"the mock exchange exited with {self.proc.returncode}")  # type: ignore[union-attr]
        self.extra["received_bytes"] += len(received)
        self._check_output(received)

    def _session(self, sends: list[bytes]) -> bytes:
        """Send, then zeros; read until the server closes. Raises Hang if it neither closes nor answers."""
        self.frames += 1
        got = bytearray()
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=self.io_timeout)
        except OSError as exc:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerDied(f"the mock exchange exited with {self.proc.returncode}") from None
            if not self._probe(self.io_timeout):
                self.stop_server()
                raise Hang(f"cannot connect and a fresh client gets no answer: {exc}") from None
            raise
        with s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for data in sends:
                    s.sendall(data)
                s.sendall(_ZEROS)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed on a malformed frame: the documented path
            except TimeoutError:
                self._hang_or_slow(s, got, "send blocked")
            deadline = time.monotonic() + self.io_timeout
            while True:
                try:
                    chunk = s.recv(1 << 20)
                except ConnectionResetError:
                    break
                except TimeoutError:
                    chunk = None
                if chunk:
                    got += chunk
                    if len(got) > 64 << 20:
                        break
                    continue
                if chunk == b"":
                    break
                if time.monotonic() > deadline:
                    self._hang_or_slow(s, got, "connection not closed after a malformed frame")
                    break
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        return bytes(got)

    def _hang_or_slow(self, s: socket.socket, got: bytearray, what: str) -> None:
        alive = self._probe(self.io_timeout)
        if not alive:
            self.stop_server()
            raise Hang(f"{what}; a fresh client gets no answer within {self.io_timeout}s")
        # answering others, but this connection is stuck: wait once more, then call it a hang
        s.settimeout(self.io_timeout)
        try:
            while chunk := s.recv(1 << 20):
                got += chunk
        except (TimeoutError, ConnectionResetError) as exc:
            if isinstance(exc, TimeoutError):
                raise Hang(
                    f"{what} for {2 * self.io_timeout:.0f}s (the server answers other clients)"
                ) from None

    def _check_output(self, data: bytes) -> None:
        """Everything the server sent this connection: well-formed, seq 1, 2, ..., sane books and trades."""
        P = self.P
        off = 0
        seq = 0
        end = len(data)
        while end - off >= P.HEADER_SIZE:
            try:
                n = P.check_frame(data, off, end - off)
            except P.ProtocolError as exc:
                self.checker.fail("server", "malformed frame from the exchange", str(exc))
                return
            if not n:
                break  # cut short by our close
            t = data[off + 2]
            s = struct.unpack_from("<I", data, off + 4)[0]
            if s != seq + 1:
                self.checker.fail("server", "sequence gap", f"{s} after {seq}")
            seq = s
            if t == P.MARKET_DATA:
                bids, asks = [], []
                for p, q, side, _lvl in P.MD_ENTRY.iter_unpack(data[off + P.MD_HEAD_SIZE : off + n]):
                    (asks if side else bids).append([p / P.SCALE, q / P.SCALE])
                self.checker.levels("server market data", bids, asks)
            elif t == P.TRADE:
                _l, _t, _s, _ts, sid, px, qty, aggr, tid = P.unpack_trade(data, off)
                self.checker.trade(
                    "server", _TradeView(px / P.SCALE, qty / P.SCALE, "sell" if aggr else "buy", sid, tid)
                )
            off += n

    def describe(self, steps: list[Step]) -> list[str]:
        return describe_mock(b"".join(d for k, d in steps if k == "send"))

    def details(self) -> dict[str, Any]:
        d = super().details()
        rss = self.rss_mb or [0.0]
        d.update(
            server_rss_mb={"start": round(rss[0], 1), "max": round(max(rss), 1), "end": round(rss[-1], 1)},
            server_log_bytes=self.log_bytes,
            server_restarts=self.restarts,
        )
        d.pop("skipped_inputs_by_reason", None)
        return d


class ServerDied(Exception):
    """The mock exchange process exited: a crash."""


@dataclass(slots=True)
class _TradeView:
    price: float
    amount: float
    side: str
    symbol_id: int
    trade_id: int


def make_target(name: str, seed: int, opts: argparse.Namespace | None = None) -> Target:
    if name == "binance":
        return BinanceTarget(seed)
    if name == "bybit":
        return BybitTarget(seed)
    if name == "dydx":
        return DydxTarget(seed)
    if name == "mock-client":
        return MockClientTarget(seed)
    if name == "mock-server":
        io_timeout = opts.io_timeout if opts is not None else 5.0
        max_rss = opts.max_rss_mb if opts is not None else 1024.0
        return MockServerTarget(seed, io_timeout, max_rss)
    raise ValueError(f"unknown target {name!r}")


# -- running one input -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: str = "ok"  # ok | crash | hang | violation
    signature: str = ""
    detail: str = ""
    violations: list[tuple[str, str]] = field(default_factory=list)


def _on_sigprof(signum: int, frame: Any) -> None:
    raise Hang("CPU time limit")


def execute(target: Target, steps: list[Step], timeout: float) -> Outcome:
    """Run one input under the watchdog; classify what happened."""
    target.checker.clear()
    trap = target.trap
    trap.records = []
    size = sum(len(d) for k, d in steps if isinstance(d, bytes | str))
    limit = timeout + size / 2**20 * 0.5
    if target.cpu_watchdog:
        signal.setitimer(signal.ITIMER_PROF, limit)
    try:
        target.run(steps)
    except Hang as exc:
        extra = f" (limit {limit:.1f} CPU s)" if target.cpu_watchdog and str(exc) == "CPU time limit" else ""
        return Outcome("hang", f"{target.name}: hang", f"{exc}{extra}")
    except MemoryError:  # memory growing without bound (the host ran out first)
        return Outcome("hang", f"{target.name}: hang (memory runaway)", traceback.format_exc(limit=-8))
    except ServerDied as exc:
        return Outcome("crash", f"{target.name}: server died", str(exc))
    except Exception as exc:  # an exception escaping the entry point
        tb = traceback.format_exc(limit=-8)
        return Outcome("crash", f"{target.name}: {type(exc).__name__} escaped", tb)
    finally:
        if target.cpu_watchdog:
            signal.setitimer(signal.ITIMER_PROF, 0)
    if trap.records:
        return Outcome("crash", f"{target.name}: exception caught by a catch-all", "\n".join(trap.records))
    v = target.checker.violations
    if v:
        return Outcome("violation", v[0][0], v[0][1], list(v))
    return Outcome()


# -- failures on disk ---------------------------------------------------------------------------------------
class Saver:
    """Writes failing inputs (at most ``per_signature`` per signature and ``limit`` per target)."""

    def __init__(self, root: Path, target: str, seed: int, limit: int = 200, per_signature: int = 3) -> None:
        self.dir = root / target
        self.target = target
        self.seed = seed
        self.limit = limit
        self.per_signature = per_signature
        self.saved: list[str] = []
        self.by_sig: Counter[str] = Counter()
        self.describe: Callable[[list[Step]], list[str]] = describe_steps

    def wants(self, signature: str) -> bool:
        return len(self.saved) < self.limit and self.by_sig[signature] < self.per_signature

    def save(
        self, index: int, outcome: Outcome, steps: list[Step], minimised: list[Step] | None = None
    ) -> str:
        self.by_sig[outcome.signature] += 1
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{outcome.kind}-{index:09d}.json"
        doc = {
            "target": self.target,
            "seed": self.seed,
            "index": index,
            "kind": outcome.kind,
            "signature": outcome.signature,
            "detail": outcome.detail[:4000],
            "violations": [list(v) for v in outcome.violations[:10]],
            "reproduce": f"python benchmarks/fuzz.py --target {self.target} --seed {self.seed} --first {index} --inputs 1",
            "replay": f"python benchmarks/fuzz.py --replay {path}",
            "input": [line[:600] for line in self.describe(steps)[:60]],
            "steps": encode_steps(steps),
        }
        if minimised is not None:
            doc["minimised_steps"] = encode_steps(minimised)
            doc["minimised"] = self.describe(minimised)
        path.write_text(json.dumps(doc, indent=1))
        self.saved.append(str(path))
        return str(path)


# -- worker and supervisor -----------------------------------------------------------------------------------
CUR, DONE, CRASHES, HANGS, VIOLATIONS, SERVER_PID, BUSY = range(7)


def _quiet_logging(trap: logging.Handler) -> None:
    logging.disable(logging.WARNING)  # feeds log skipped inputs; the counts are what matters here
    root = logging.getLogger()
    root.handlers = [trap]
    root.setLevel(logging.ERROR)


def _worker(name: str, opts: argparse.Namespace, first: int, last: int, shared: Any, conn: Any) -> None:
    """Run inputs [first, last) of one target; counters in ``shared`` and the messages sent survive a death."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        target = make_target(name, opts.seed, opts)
        _quiet_logging(target.trap)
        signal.signal(signal.SIGPROF, _on_sigprof)
        if isinstance(target, MockServerTarget):
            target.on_server_start = lambda pid: shared.__setitem__(SERVER_PID, pid)
        saver = Saver(Path(opts.save_dir), name, opts.seed, opts.max_saves)
        saver.describe = target.describe
        for i in range(first, last):
            shared[CUR] = i
            try:
                steps = target.generate(i)
            except Exception:  # a fuzzer bug, not a finding: say so loudly, count it, go on
                target.extra["generator_errors"] = target.extra.get("generator_errors", 0) + 1
                if target.extra["generator_errors"] <= 3:
                    conn.send(("error", f"input {i} could not be generated:\n{traceback.format_exc()}"))
                shared[DONE] += 1
                continue
            shared[BUSY] = 1
            out = execute(target, steps, opts.timeout)
            shared[BUSY] = 0
            for sig, detail in target.checker.report_anomalies[:1]:
                conn.send(("anomaly", sig, f"input {i}: {detail[:300]}"))
            if out.kind != "ok":
                shared[{"crash": CRASHES, "hang": HANGS, "violation": VIOLATIONS}[out.kind]] += 1
                path = None
                if saver.wants(out.signature):
                    mini = None
                    if out.kind == "violation":
                        mini = target.minimise(steps, out.signature)
                        target.checker.clear()
                    path = saver.save(i, out, steps, mini)
                conn.send(("fail", out.signature, f"input {i}: {out.detail[:300]}", path))
            shared[DONE] += 1
        target.close()
        conn.send(("done", target.details()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _kill(pid: int) -> None:
    if pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Progress:
    """One status line on stderr: rewritten in place on a terminal, every 10 s otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, text: str, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text + ("\n" if final else ""))
            sys.stderr.flush()
        elif final or now - self.last >= 10.0:
            self.last = now
            print(text, file=sys.stderr, flush=True)


#: The running worker and its shared counters, so that an interrupted run leaves no process behind.
_LIVE: dict[str, Any] = {}


def _cleanup() -> None:
    proc, shared = _LIVE.get("proc"), _LIVE.get("shared")
    if proc is not None and proc.is_alive():
        proc.kill()
    if shared is not None:
        _kill(shared[SERVER_PID])


def _on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def fuzz_target(name: str, opts: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Run ``opts.inputs`` inputs of ``name`` in forked workers; restart after a dead or stuck worker."""
    ctx = mp.get_context("fork")
    first, end = opts.first, opts.first + opts.inputs
    totals = Counter[str]()
    sigs: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    examples: dict[str, str] = {}
    saved: list[str] = []
    details: dict[str, Any] = {}
    parent_target: Target | None = None
    saver = Saver(Path(opts.save_dir), name, opts.seed, opts.max_saves)
    saver.limit = 10**9  # the workers apply the limit; this one only saves inputs of dead workers
    t0 = time.perf_counter()
    nxt = first
    workers = 0
    while nxt < end:
        shared = ctx.RawArray("q", 8)
        shared[CUR] = nxt
        r, w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(name, opts, nxt, end, shared, w), daemon=True)
        proc.start()
        _LIVE.update(proc=proc, shared=shared)
        workers += 1
        w.close()
        finished = False
        cur, since = -1, time.monotonic()
        stuck = ""
        while True:
            while r.poll(0.25 if not finished else 0):
                try:
                    msg = r.recv()
                except EOFError:
                    break
                if msg[0] == "fail":
                    sigs[msg[1]] += 1
                    examples.setdefault(msg[1], msg[2])
                    if msg[3]:
                        saved.append(msg[3])
                        saver.by_sig[msg[1]] += 1
                elif msg[0] == "anomaly":
                    anomalies[msg[1]] += 1
                    examples.setdefault(msg[1], msg[2])
                elif msg[0] == "done":
                    details = msg[1]
                    finished = True
                elif msg[0] == "error":
                    print(f"[fuzz] {name}: fuzzer error: {msg[1]}", file=sys.stderr)
            if finished or not proc.is_alive():
                break
            now = time.monotonic()
            if shared[CUR] != cur:
                cur, since = shared[CUR], now
            elif shared[BUSY] and now - since > opts.watchdog:
                stuck = f"input ran {opts.watchdog:.0f}s of wall time"
            rss = _rss_mb(proc.pid)
            if rss > opts.max_rss_mb:
                stuck = f"worker RSS {rss:.0f} MB above {opts.max_rss_mb:.0f} MB (memory runaway)"
            if stuck:
                proc.kill()
                break
            done = totals["inputs"] + shared[DONE]
            elapsed = time.perf_counter() - t0
            progress.show(
                f"[fuzz] {name}: {done:,}/{opts.inputs:,} inputs, {done / elapsed:,.0f}/s, crashes "
                f"{totals['crashes'] + shared[CRASHES]}, hangs {totals['hangs'] + shared[HANGS]}, "
                f"violations {totals['violations'] + shared[VIOLATIONS]}"
            )
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        totals["inputs"] += shared[DONE]
        totals["crashes"] += shared[CRASHES]
        totals["hangs"] += shared[HANGS]
        totals["violations"] += shared[VIOLATIONS]
        if finished:
            break
        # the worker died (or was killed): the input in progress is a crash or a hang
        _kill(shared[SERVER_PID])
        index = shared[CUR]
        if not stuck and not shared[BUSY]:
            raise RuntimeError(f"{name}: the worker died outside an input (near input {index}); see above")
        kind = "hang" if stuck else "crash"
        why = stuck or f"worker process died (exit code {proc.exitcode})"
        totals["inputs"] += 1
        totals["hangs" if stuck else "crashes"] += 1
        out = Outcome(kind, f"{name}: {'hang (worker killed)' if stuck else 'process died'}", why)
        sigs[out.signature] += 1
        examples.setdefault(out.signature, f"input {index}: {why}")
        if parent_target is None:
            parent_target = make_target(name, opts.seed, opts)
        if saver.wants(out.signature):
            try:
                saved.append(saver.save(index, out, parent_target.generate(index)))
            except Exception:  # a fuzzer bug in generation: say so, keep going
                print(
                    f"[fuzz] {name}: input {index} cannot be rebuilt:\n{traceback.format_exc()}",
                    file=sys.stderr,
                )
        nxt = index + 1
    elapsed = time.perf_counter() - t0
    summary = {
        "target": name,
        "inputs": totals["inputs"],
        "inputs_per_s": round(totals["inputs"] / elapsed, 1) if elapsed > 0 else 0.0,
        "crashes": totals["crashes"],
        "hangs": totals["hangs"],
        "invariant_violations": totals["violations"],
    }
    progress.show(
        f"[fuzz] {name}: {summary['inputs']:,} inputs in {elapsed:.1f}s ({summary['inputs_per_s']:,.0f}/s), "
        f"crashes {summary['crashes']}, hangs {summary['hangs']}, violations {summary['invariant_violations']}",
        final=True,
    )
    for sig, n in sigs.most_common():
        print(f"[fuzz]   {n:>9,}  {sig}   e.g. {examples.get(sig, '')[:240]!r}", file=sys.stderr)
    for sig, n in anomalies.most_common():
        print(f"[fuzz]   {n:>9,}  (not counted) {sig}", file=sys.stderr)
    return {
        **summary,
        "elapsed_s": round(elapsed, 2),
        "seed": opts.seed,
        "first": first,
        "workers": workers,
        "signatures": dict(sigs.most_common()),
        "report_anomalies": dict(anomalies.most_common()),
        "examples": examples,
        "saved": saved,
        "details": details,
    }


def replay(path: Path, opts: argparse.Namespace) -> int:
    """Run one saved input in this process and print what it does (exit 1 if it still fails)."""
    doc = json.loads(path.read_text())
    target = make_target(doc["target"], doc.get("seed", DEFAULT_SEED), opts)
    _quiet_logging(target.trap)
    signal.signal(signal.SIGPROF, _on_sigprof)
    key = "minimised_steps" if opts.minimised and "minimised_steps" in doc else "steps"
    steps = decode_steps(doc[key])
    try:
        out = execute(target, steps, opts.timeout)
    finally:
        target.close()
    for line in target.describe(steps):
        print(f"  {line}", file=sys.stderr)
    result = {"file": str(path), "kind": out.kind, "signature": out.signature, "detail": out.detail,
              "violations": out.violations}  # fmt: skip
    print(json.dumps(result))
    return 0 if out.kind == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--target", choices=("all", *TARGETS), default="all")
    ap.add_argument("--inputs", type=int, default=10_000, help="inputs per target (default %(default)s)")
    ap.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="default %(default)s: runs are reproducible"
    )
    ap.add_argument(
        "--first", type=int, default=0, help="index of the first input (rerun one: --first I --inputs 1)"
    )
    ap.add_argument("--timeout", type=float, default=0.5, help="CPU seconds one input may take (+0.5 s/MB)")
    ap.add_argument(
        "--watchdog", type=float, default=60.0, help="wall seconds before a stuck worker is killed"
    )
    ap.add_argument("--io-timeout", type=float, default=5.0, help="mock-server: seconds to close/answer")
    ap.add_argument(
        "--max-rss-mb", type=float, default=1024.0, help="a worker or server above this is a hang"
    )
    ap.add_argument(
        "--save-dir", default="fuzz-failures", help="failing inputs go here (default %(default)s)"
    )
    ap.add_argument("--max-saves", type=int, default=200, help="saved inputs per target at most")
    ap.add_argument("--json-out", type=Path, default=None, help="write the full results here")
    ap.add_argument("--replay", type=Path, default=None, help="run one saved input and report")
    ap.add_argument("--minimised", action="store_true", help="with --replay: run the minimised steps")
    opts = ap.parse_args(argv)
    if opts.replay is not None:
        return replay(opts.replay, opts)
    targets = list(TARGETS) if opts.target == "all" else [opts.target]
    progress = Progress()
    results = []
    signal.signal(signal.SIGTERM, _on_term)
    for name in targets:
        try:
            res = fuzz_target(name, opts, progress)
        except KeyboardInterrupt:
            print(f"[fuzz] {name}: interrupted", file=sys.stderr)
            return 130
        finally:
            _cleanup()
        results.append(res)
        line = {
            k: res[k]
            for k in ("target", "inputs", "inputs_per_s", "crashes", "hangs", "invariant_violations")
        }
        print(json.dumps(line), flush=True)
    if len(results) > 1:
        elapsed = sum(r["elapsed_s"] for r in results)
        total = sum(r["inputs"] for r in results)
        print(json.dumps({
            "target": "all", "inputs": total, "inputs_per_s": round(total / elapsed, 1) if elapsed else 0.0,
            "crashes": sum(r["crashes"] for r in results), "hangs": sum(r["hangs"] for r in results),
            "invariant_violations": sum(r["invariant_violations"] for r in results),
        }), flush=True)  # fmt: skip
    if opts.json_out is not None:
        import platform

        doc = {"python": platform.python_version(), "machine": platform.machine(), "argv": sys.argv[1:],
               "targets": {r["target"]: r for r in results}}  # fmt: skip
        opts.json_out.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
