"""The mock exchange's binary wire protocol (issue 4, "Wire protocol"; docs/protocol.md).

All integers little-endian, no padding. Prices and quantities are signed 64-bit
fixed point with 8 decimals (1.0 is 100_000_000). Every message starts with the
16-byte header ``<HHIQ``: msg_length (whole message, header included), msg_type,
seq (per connection and direction, first message 1) and timestamp (sender's clock,
ns since the Unix epoch).

This module is shared by the server, the feed, the venue, the engine and the
benchmarks, so it holds only precompiled :class:`struct.Struct` codecs, tiny
encode helpers and the incremental :class:`FrameDecoder`. No logging, no I/O.
"""

from __future__ import annotations

import os
import struct
from enum import IntEnum
from operator import gt as _gt
from operator import lt as _lt

#: 8-decimal fixed point: 1.0 on the wire is 100_000_000.
SCALE = 100_000_000


class MsgType(IntEnum):
    MARKET_DATA = 1
    EXECUTION_REPORT = 2
    NEW_ORDER = 3
    CANCEL_ORDER = 4
    HEARTBEAT = 5
    SECURITY_DEFINITION = 6
    TRADE = 7


MARKET_DATA = 1
EXECUTION_REPORT = 2
NEW_ORDER = 3
CANCEL_ORDER = 4
HEARTBEAT = 5
SECURITY_DEFINITION = 6
TRADE = 7

# -- codecs ---------------------------------------------------------------------------
HEADER = struct.Struct("<HHIQ")  # msg_length, msg_type, seq, timestamp_ns
HEADER_SIZE = HEADER.size  # 16

# Bodies, exactly as the issue states them.
MD_HEAD = struct.Struct("<IH")  # symbol_id, num_entries
MD_ENTRY = struct.Struct("<qqBB")  # price, qty, side (0 bid, 1 ask), level (0 = best)
EXEC_BODY = struct.Struct("<QQQIBBqqqqH")
NEW_ORDER_BODY = struct.Struct("<QIBBBqq")
CANCEL_BODY = struct.Struct("<QQI")
SECDEF_BODY = struct.Struct("<Iqq16s")
TRADE_BODY = struct.Struct("<IqqBQ")

# Whole messages (header + body) in one Struct: one pack/unpack call per message.
EXEC_MSG = struct.Struct("<HHIQ" + EXEC_BODY.format[1:])
NEW_ORDER_MSG = struct.Struct("<HHIQ" + NEW_ORDER_BODY.format[1:])
CANCEL_MSG = struct.Struct("<HHIQ" + CANCEL_BODY.format[1:])
HEARTBEAT_MSG = HEADER
SECDEF_MSG = struct.Struct("<HHIQ" + SECDEF_BODY.format[1:])
TRADE_MSG = struct.Struct("<HHIQ" + TRADE_BODY.format[1:])
MD_MSG_HEAD = struct.Struct("<HHIQ" + MD_HEAD.format[1:])

EXEC_SIZE = EXEC_MSG.size  # 80
NEW_ORDER_SIZE = NEW_ORDER_MSG.size  # 47
CANCEL_SIZE = CANCEL_MSG.size  # 36
HEARTBEAT_SIZE = HEADER_SIZE  # 16
SECDEF_SIZE = SECDEF_MSG.size  # 52
TRADE_SIZE = TRADE_MSG.size  # 45
MD_HEAD_SIZE = MD_MSG_HEAD.size  # 22
MD_ENTRY_SIZE = MD_ENTRY.size  # 18
#: msg_length is a u16, so a snapshot holds at most this many entries.
MD_MAX_ENTRIES = (0xFFFF - MD_HEAD_SIZE) // MD_ENTRY_SIZE

#: Exact message length per fixed-size type; MARKET_DATA is variable (None).
FIXED_SIZES: dict[int, int | None] = {
    MARKET_DATA: None,
    EXECUTION_REPORT: EXEC_SIZE,
    NEW_ORDER: NEW_ORDER_SIZE,
    CANCEL_ORDER: CANCEL_SIZE,
    HEARTBEAT: HEARTBEAT_SIZE,
    SECURITY_DEFINITION: SECDEF_SIZE,
    TRADE: TRADE_SIZE,
}
# Indexable by msg_type for the decoder's hot loop: -1 unknown, 0 variable, else exact size.
_SIZE_BY_TYPE = (-1, 0, EXEC_SIZE, NEW_ORDER_SIZE, CANCEL_SIZE, HEARTBEAT_SIZE, SECDEF_SIZE, TRADE_SIZE)
# The decoder's fast path: the exact length of a fixed-size type, and for MARKET_DATA (and type 0)
# a value no u16 length equals, so a declared length of 0 can never pass as "exact" (issue 18).
_EXACT_SIZE = (-1, -1, EXEC_SIZE, NEW_ORDER_SIZE, CANCEL_SIZE, HEARTBEAT_SIZE, SECDEF_SIZE, TRADE_SIZE)

# Field values.
SIDE_BUY, SIDE_SELL = 0, 1  # orders, executions and trade aggressor
BOOK_BID, BOOK_ASK = 0, 1  # MARKET_DATA entry side
ORD_LIMIT, ORD_MARKET = 0, 1
TIF_GTC, TIF_IOC, TIF_POST_ONLY = 0, 1, 2
EXEC_NEW, EXEC_PARTIAL_FILL, EXEC_FILL, EXEC_CANCELED, EXEC_REJECTED = 0, 1, 2, 3, 4
(
    REJECT_NONE,
    REJECT_UNKNOWN_SYMBOL,
    REJECT_INVALID_QUANTITY,
    REJECT_INVALID_PRICE,
    REJECT_UNKNOWN_ORDER,
    REJECT_DUPLICATE_CL_ORD_ID,
    REJECT_RISK_OR_THROTTLE,
) = range(7)

EXEC_TYPE_NAMES = ("NEW", "PARTIAL_FILL", "FILL", "CANCELED", "REJECTED")
REJECT_REASON_NAMES = (
    "none",
    "unknown symbol",
    "invalid quantity",
    "invalid price",
    "unknown order",
    "duplicate cl_ord_id",
    "risk or throttle",
)


class ProtocolError(ValueError):
    """A malformed frame: bad length, unknown type or truncated body. The connection is closed."""


# -- fixed point ----------------------------------------------------------------------
def to_fixed(x: float) -> int:
    """Float to 8-decimal fixed point, rounded to nearest (never truncated: 0.1 * 1e8 is 9999999.99...)."""
    return round(x * SCALE)


def from_fixed(v: int) -> float:
    return v / SCALE


# -- encoders (one Struct.pack each; callers own seq and timestamp) -------------------
def encode_heartbeat(seq: int, ts: int) -> bytes:
    return HEADER.pack(HEARTBEAT_SIZE, HEARTBEAT, seq, ts)


def encode_new_order(
    seq: int,
    ts: int,
    cl_ord_id: int,
    symbol_id: int,
    side: int,
    ord_type: int,
    tif: int,
    price: int,
    qty: int,
) -> bytes:
    return NEW_ORDER_MSG.pack(
        NEW_ORDER_SIZE, NEW_ORDER, seq, ts, cl_ord_id, symbol_id, side, ord_type, tif, price, qty
    )


def encode_cancel(seq: int, ts: int, cl_ord_id: int, orig_cl_ord_id: int, symbol_id: int) -> bytes:
    return CANCEL_MSG.pack(CANCEL_SIZE, CANCEL_ORDER, seq, ts, cl_ord_id, orig_cl_ord_id, symbol_id)


def encode_execution_report(
    seq: int,
    ts: int,
    cl_ord_id: int,
    order_id: int,
    exec_id: int,
    symbol_id: int,
    side: int,
    exec_type: int,
    last_px: int,
    last_qty: int,
    leaves_qty: int,
    cum_qty: int,
    reject_reason: int,
) -> bytes:
    return EXEC_MSG.pack(
        EXEC_SIZE, EXECUTION_REPORT, seq, ts, cl_ord_id, order_id, exec_id, symbol_id, side, exec_type,
        last_px, last_qty, leaves_qty, cum_qty, reject_reason,
    )  # fmt: skip


def encode_security_definition(
    seq: int, ts: int, symbol_id: int, tick_size: int, lot_size: int, name: str
) -> bytes:
    raw = name.encode("ascii")
    if len(raw) > 16:
        raise ValueError(f"symbol name {name!r} is longer than 16 bytes")
    return SECDEF_MSG.pack(SECDEF_SIZE, SECURITY_DEFINITION, seq, ts, symbol_id, tick_size, lot_size, raw)


def encode_trade(
    seq: int, ts: int, symbol_id: int, price: int, qty: int, aggressor: int, trade_id: int
) -> bytes:
    return TRADE_MSG.pack(TRADE_SIZE, TRADE, seq, ts, symbol_id, price, qty, aggressor, trade_id)


def encode_market_data_body(symbol_id: int, bids, asks) -> bytes:
    """The MARKET_DATA body (no header) from fixed-point ``(price, qty)`` levels, best first.

    Built once per symbol and tick, then sent to every client behind its own header
    (seq is per connection), see :func:`market_data_header`.
    """
    n = len(bids) + len(asks)
    if n > MD_MAX_ENTRIES:
        raise ValueError(f"MARKET_DATA with {n} entries does not fit a u16 msg_length")
    buf = bytearray(MD_HEAD.size + n * MD_ENTRY_SIZE)
    MD_HEAD.pack_into(buf, 0, symbol_id, n)
    off = MD_HEAD.size
    pack = MD_ENTRY.pack_into
    for level, (p, q) in enumerate(bids):
        pack(buf, off, p, q, BOOK_BID, level)
        off += MD_ENTRY_SIZE
    for level, (p, q) in enumerate(asks):
        pack(buf, off, p, q, BOOK_ASK, level)
        off += MD_ENTRY_SIZE
    return bytes(buf)


def market_data_header(body_len: int, seq: int, ts: int) -> bytes:
    return HEADER.pack(HEADER_SIZE + body_len, MARKET_DATA, seq, ts)


def encode_market_data(seq: int, ts: int, symbol_id: int, bids, asks) -> bytes:
    body = encode_market_data_body(symbol_id, bids, asks)
    return market_data_header(len(body), seq, ts) + body


# -- decoders (``buf[off:]`` holds one complete, length-checked message) -------------
unpack_header = HEADER.unpack_from
unpack_execution_report = EXEC_MSG.unpack_from
"""``(len, type, seq, ts, cl_ord_id, order_id, exec_id, symbol_id, side, exec_type,
last_px, last_qty, leaves_qty, cum_qty, reject_reason)``"""
unpack_new_order = NEW_ORDER_MSG.unpack_from
"""``(len, type, seq, ts, cl_ord_id, symbol_id, side, ord_type, tif, price, qty)``"""
unpack_cancel = CANCEL_MSG.unpack_from
"""``(len, type, seq, ts, cl_ord_id, orig_cl_ord_id, symbol_id)``"""
unpack_security_definition = SECDEF_MSG.unpack_from
"""``(len, type, seq, ts, symbol_id, tick_size, lot_size, name_bytes)``"""
unpack_trade = TRADE_MSG.unpack_from
"""``(len, type, seq, ts, symbol_id, price, qty, aggressor, trade_id)``"""


def symbol_name(raw: bytes) -> str:
    """SECURITY_DEFINITION name: ASCII, NUL-padded to 16 bytes."""
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def decode_market_data(buf, off: int = 0) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """``(symbol_id, bids, asks)`` with fixed-point ``(price, qty)`` levels ordered by level."""
    _length, _t, _seq, _ts, symbol_id, n = MD_MSG_HEAD.unpack_from(buf, off)
    bids: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    for p, q, side, _level in MD_ENTRY.iter_unpack(
        memoryview(buf)[off + MD_HEAD_SIZE : off + MD_HEAD_SIZE + n * MD_ENTRY_SIZE]
    ):
        (asks if side else bids).append((p, q))
    return symbol_id, bids, asks


#: One precompiled Struct per entry count seen (bounded: msg_length is a u16): all entries of a
#: MARKET_DATA unpack in one C call instead of one ``iter_unpack`` step per level.
_MD_ENTRIES: dict[int, struct.Struct] = {}


def _entries_struct(n: int) -> struct.Struct:
    s = _MD_ENTRIES.get(n)
    if s is None:
        s = _MD_ENTRIES[n] = struct.Struct("<" + "qqBB" * n)
    return s


def _side_levels(prices, qtys, reverse: bool) -> list[list[float]]:
    """Float ``[price, qty]`` pairs, best first, one per price, zero sizes dropped (the slow path:
    a foreign sender's unordered or duplicated levels, normalised as ``L2Book.load_snapshot`` would)."""
    s = SCALE
    levels = {p: q for p, q in zip(prices, qtys, strict=True) if q > 0}  # zero sizes are ignored
    return [[p / s, levels[p] / s] for p in sorted(levels, reverse=reverse)]


def _decode_book_py(buf, off: int = 0) -> tuple[int, list[list[float]], list[list[float]]]:
    """``(symbol_id, bids, asks)`` as float ``[price, qty]`` lists, best first, sizes > 0.

    :func:`decode_book` is this, compiled (``_fastproto.c``), when the extension is built; this
    stays the reference and its fallback for non-canonical snapshots.

    The hot-path decoder (engine venue, mock feed): one unpack of the whole entry block, then
    C-speed checks that the exchange sent what it always sends (bids then asks, each side
    strictly best first, sizes > 0) and one comprehension converting every level. Anything
    else is normalised the slow way, to exactly what an ``L2Book`` would hold, or refused with
    :class:`ProtocolError` when no exchange could have meant it (a price <= 0, a negative size,
    a crossed book): it must never reach a book.
    """
    _length, _t, _seq, _ts, symbol_id, n = MD_MSG_HEAD.unpack_from(buf, off)
    if not n:
        return symbol_id, [], []
    flat = _entries_struct(n).unpack_from(buf, off + MD_HEAD_SIZE)
    sides = flat[2::4]
    nb = sides.count(BOOK_BID)
    cut = 4 * nb
    bid_px = flat[0:cut:4]
    ask_px = flat[cut::4]
    if (
        sides[:nb].count(BOOK_BID) == nb
        and min(flat[1::4]) > 0
        and min(flat[0::4]) > 0
        and not (nb and cut < len(flat) and flat[0] >= flat[cut])
        and all(map(_gt, bid_px, bid_px[1:]))
        and all(map(_lt, ask_px, ask_px[1:]))
    ):
        s = SCALE
        it = iter(flat)
        levels = [[p / s, q / s] for p, q, _side, _level in zip(it, it, it, it, strict=True)]
        return symbol_id, levels[:nb], levels[nb:]
    entries = [flat[i : i + 4] for i in range(0, 4 * n, 4)]
    bad = next((e for e in entries if e[0] <= 0 or e[1] < 0), None)
    if bad is not None:  # no exchange quotes a price <= 0 or a negative size: the snapshot is garbage
        raise ProtocolError(f"MARKET_DATA: impossible level price {bad[0]} qty {bad[1]} (fixed point)")
    bids_e = [e for e in entries if e[2] == BOOK_BID]
    asks_e = [e for e in entries if e[2] != BOOK_BID]
    bids = _side_levels([e[0] for e in bids_e], [e[1] for e in bids_e], True) if bids_e else []
    asks = _side_levels([e[0] for e in asks_e], [e[1] for e in asks_e], False) if asks_e else []
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise ProtocolError(f"MARKET_DATA: crossed book (best bid {bids[0][0]} >= best ask {asks[0][0]})")
    return symbol_id, bids, asks


def _market_data_head_py(data) -> tuple[int, int] | None:
    """``(timestamp_ns, symbol_id)`` if ``data`` (bytes or bytearray) is exactly one MARKET_DATA message
    that :func:`check_frame` accepts, else None (then the caller's general path decides)."""
    if type(data) is not bytes and type(data) is not bytearray:
        return None
    size = len(data)
    if size < MD_HEAD_SIZE or data[2] != MARKET_DATA or data[3]:
        return None
    length, _t, _seq, ts, symbol_id, n = MD_MSG_HEAD.unpack_from(data, 0)
    if length != size or size != MD_HEAD_SIZE + n * MD_ENTRY_SIZE:
        return None
    return ts, symbol_id


try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from . import _fastproto
except ImportError:  # built without a C compiler: the same results, ~10x slower
    _fastproto = None
    decode_book = _decode_book_py
    market_data_head = _market_data_head_py
    _split_frames = None
    market_data_route = None
else:
    _fastproto.set_scale(SCALE)
    _fastproto.set_fallback(_decode_book_py)
    decode_book = _fastproto.decode_book
    market_data_head = _fastproto.market_data_head
    _split_frames = _fastproto.split_frames
    #: MockFeed.on_frame of a usual MARKET_DATA in one C call (MockFeed.frame_handler).
    market_data_route = _fastproto.market_data_route


def check_frame(buf, off: int, avail: int) -> int:
    """Validate the header at ``buf[off:]``; return the message length, or 0 if more bytes are needed.

    Raises :class:`ProtocolError` for a length below the header size, an unknown
    type, or a length that does not match the type's layout (a truncated body).
    """
    if avail < HEADER_SIZE:
        return 0
    length, msg_type = _LEN_TYPE.unpack_from(buf, off)
    if length < HEADER_SIZE:
        raise ProtocolError(f"bad length {length} (less than the {HEADER_SIZE}-byte header)")
    if msg_type >= len(_SIZE_BY_TYPE) or msg_type == 0:
        raise ProtocolError(f"unknown message type {msg_type}")
    want = _SIZE_BY_TYPE[msg_type]
    if want:
        if length != want:
            raise ProtocolError(
                f"bad length {length} for {MsgType(msg_type).name} (expected {want})"
                + (": truncated body" if length < want else "")
            )
    else:  # MARKET_DATA: header + <IH> + n entries
        if length < MD_HEAD_SIZE:
            raise ProtocolError(f"bad length {length} for MARKET_DATA: truncated body")
        if avail >= MD_HEAD_SIZE:
            n = _MD_COUNT.unpack_from(buf, off + HEADER_SIZE + 4)[0]
            if length != MD_HEAD_SIZE + n * MD_ENTRY_SIZE:
                raise ProtocolError(
                    f"bad length {length} for MARKET_DATA with {n} entries "
                    f"(expected {MD_HEAD_SIZE + n * MD_ENTRY_SIZE})"
                )
    return length if avail >= length else 0


_LEN_TYPE = struct.Struct("<HH")
_MD_COUNT = struct.Struct("<H")


class FrameDecoder:
    """Incremental stream reassembly: bytes in, complete validated messages out.

    Handles partial reads (a message split over several reads) and several
    messages per read. ``feed(data)`` returns a list of ``(msg_type, buf, off)``:
    each message is ``buf[off : off + length]`` and can be unpacked in place with
    the ``unpack_*`` functions (``buf`` is the read itself when nothing was
    pending, so the common case copies nothing). Raises :class:`ProtocolError` on
    a malformed frame; after that the stream cannot be trusted and the connection
    must be closed. :meth:`pending` tells whether a partial message is buffered
    (a truncated message when the peer closes).
    """

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def pending(self) -> int:
        """Bytes of an incomplete message held back."""
        return len(self._rest)

    def feed(self, data: bytes) -> list[tuple[int, bytes, int]]:
        if self._rest:
            data = self._rest + data
            self._rest = b""
        end = len(data)
        if _split_frames is not None and type(data) is bytes:
            out, off = _split_frames(data)  # the well-formed leading messages, compiled
            if off == end:
                return out
        else:
            out, off = [], 0
        unpack = _LEN_TYPE.unpack_from
        sizes = _EXACT_SIZE
        while end - off >= HEADER_SIZE:
            length, msg_type = unpack(data, off)
            # Fast path: a known fixed-size type with the exact length. Every other header goes
            # through check_frame, which refuses any length below the type's minimum, so each
            # iteration consumes at least HEADER_SIZE bytes or stops.
            if 0 < msg_type < 8 and sizes[msg_type] == length:
                if end - off < length:
                    break
            else:
                length = check_frame(data, off, end - off)
                if not length:
                    break
            out.append((msg_type, data, off))
            off += length
        if off < end:
            self._rest = data[off:]
        return out


def split_messages(data: bytes) -> list[bytes]:
    """Split a buffer holding whole messages into one ``bytes`` per message (tests, replay tools)."""
    dec = FrameDecoder()
    msgs = [bytes(buf[off : off + _LEN_TYPE.unpack_from(buf, off)[0]]) for _t, buf, off in dec.feed(data)]
    if dec.pending():
        raise ProtocolError(f"truncated message: {dec.pending()} trailing bytes")
    return msgs
