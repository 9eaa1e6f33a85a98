"""protocol.py: byte layouts exactly as issue 4 states them, and the incremental decoder."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_mock_exchange import protocol as P

from latentspeed_core.testing import expect_compiled

#: Comparisons need the compiled side; without a compiler the is-built test checks the fallback instead.
compiled_only = pytest.mark.skipif(
    not expect_compiled(),
    reason="compiled code not in use (no C compiler, or LATENTSPEED_PURE_PYTHON): nothing to compare",
)


def test_layouts_match_the_issue():
    assert P.HEADER.format == "<HHIQ" and P.HEADER_SIZE == 16
    assert (P.MD_HEAD.format, P.MD_ENTRY.format) == ("<IH", "<qqBB")
    assert P.EXEC_BODY.format == "<QQQIBBqqqqH"
    assert P.NEW_ORDER_BODY.format == "<QIBBBqq"
    assert P.CANCEL_BODY.format == "<QQI"
    assert P.SECDEF_BODY.format == "<Iqq16s"
    assert P.TRADE_BODY.format == "<IqqBQ"
    sizes = (P.EXEC_SIZE, P.NEW_ORDER_SIZE, P.CANCEL_SIZE, P.HEARTBEAT_SIZE, P.SECDEF_SIZE, P.TRADE_SIZE)
    assert sizes == (16 + 64, 16 + 31, 16 + 20, 16, 16 + 36, 16 + 29)
    assert [int(t) for t in P.MsgType] == list(range(1, 8))


def test_fixed_point_rounds_to_nearest():
    assert P.to_fixed(1.0) == 100_000_000
    assert P.to_fixed(0.1) == 10_000_000  # 0.1 * 1e8 is 9999999.999... in binary floating point
    assert P.to_fixed(-2.5) == -250_000_000
    assert P.from_fixed(P.to_fixed(50_000.5)) == 50_000.5


def test_new_order_bytes_are_exactly_the_documented_layout():
    msg = P.encode_new_order(
        3, 1_700_000_000_000_000_000, 42, 7, 1, 0, 1, P.to_fixed(101.25), P.to_fixed(0.5)
    )
    expected = struct.pack("<HHIQ", 47, 3, 3, 1_700_000_000_000_000_000) + struct.pack(
        "<QIBBBqq", 42, 7, 1, 0, 1, 10_125_000_000, 50_000_000
    )
    assert msg == expected
    assert P.unpack_new_order(msg)[4:] == (42, 7, 1, 0, 1, 10_125_000_000, 50_000_000)


def test_execution_report_and_trade_and_definition_round_trip():
    er = P.encode_execution_report(9, 5, 1, 2, 3, 4, 1, P.EXEC_PARTIAL_FILL, 10, 20, 30, 40, 0)
    assert P.unpack_execution_report(er) == (80, 2, 9, 5, 1, 2, 3, 4, 1, 1, 10, 20, 30, 40, 0)
    tr = P.encode_trade(1, 2, 3, 4, 5, 1, 99)
    assert P.unpack_trade(tr) == (45, 7, 1, 2, 3, 4, 5, 1, 99)
    sd = P.encode_security_definition(1, 2, 3, 50_000_000, 10_000, "BTC-USD")
    assert P.symbol_name(P.unpack_security_definition(sd)[7]) == "BTC-USD"
    with pytest.raises(ValueError, match="longer than 16"):
        P.encode_security_definition(1, 2, 3, 1, 1, "A-VERY-LONG-SYMBOL-NAME")


def test_market_data_round_trip():
    bids = [(100, 1), (99, 2)]
    asks = [(101, 3), (102, 4), (103, 5)]
    msg = P.encode_market_data(4, 8, 2, bids, asks)
    assert len(msg) == 16 + 6 + 5 * 18
    assert P.decode_market_data(msg) == (2, bids, asks)
    # entry layout: price, qty, side (0 bid, 1 ask), level (0 = best)
    assert struct.unpack_from("<qqBB", msg, 22 + 18 * 3) == (102, 4, 1, 1)


def _stream() -> bytes:
    return b"".join([
        P.encode_security_definition(1, 0, 1, 1, 1, "BTC-USD"),
        P.encode_market_data(2, 0, 1, [(10, 1)] * 3, [(11, 1)] * 3),
        P.encode_heartbeat(3, 0),
        P.encode_trade(4, 0, 1, 10, 1, 0, 1),
        P.encode_execution_report(5, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0),
        P.encode_new_order(6, 0, 1, 1, 0, 0, 0, 10, 1),
        P.encode_cancel(7, 0, 2, 1, 1),
    ])  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_decoder_reassembles_any_split(seed):
    data = _stream()
    rng = random.Random(seed)
    dec = P.FrameDecoder()
    got = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 40)
        for msg_type, buf, off in dec.feed(data[i : i + n]):
            got.append((msg_type, P.unpack_header(buf, off)[2]))
        i += n
    assert got == [(6, 1), (1, 2), (5, 3), (7, 4), (2, 5), (3, 6), (4, 7)]
    assert dec.pending() == 0


def test_decoder_several_messages_in_one_read():
    msgs = P.split_messages(_stream())
    assert [m[2] for m in msgs] == [6, 1, 5, 7, 2, 3, 4]
    assert b"".join(msgs) == _stream()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (struct.pack("<HHIQ", 15, 5, 1, 0), "bad length 15"),
        (struct.pack("<HHIQ", 16, 0, 1, 0), "unknown message type 0"),
        (struct.pack("<HHIQ", 16, 8, 1, 0), "unknown message type 8"),
        (struct.pack("<HHIQ", 17, 5, 1, 0) + b"x", "bad length 17 for HEARTBEAT"),
        (struct.pack("<HHIQ", 40, 3, 1, 0) + bytes(24), "truncated body"),
        (struct.pack("<HHIQ", 20, 1, 1, 0) + bytes(4), "MARKET_DATA: truncated body"),
        (struct.pack("<HHIQ", 0, 1, 1, 0), "bad length 0"),  # issue 18: once an endless loop
        (struct.pack("<HHIQ", 16, 1, 1, 0), "MARKET_DATA: truncated body"),
        (struct.pack("<HHIQIH", 22 + 18, 1, 1, 0, 1, 2) + bytes(18), "MARKET_DATA with 2 entries"),
    ],
)
def test_decoder_rejects_malformed_frames(data, error):
    with pytest.raises(P.ProtocolError, match=error):
        P.FrameDecoder().feed(data)


ZERO_LENGTH_MARKET_DATA = struct.pack("<HHIQ", 0, 1, 1, 0)


@pytest.mark.parametrize("pure", [False, True], ids=["compiled-first", "pure-python"])
def test_a_zero_length_header_is_refused_not_looped_on(pure):
    """Issue 18, defect 1: this 16-byte frame made ``feed`` append forever without consuming.

    Run in a child with a deadline, so a regression fails the test instead of eating the
    machine's memory."""
    code = (
        "import struct, sys\n"
        "from latentspeed_mock_exchange import protocol as P\n"
        f"data = {ZERO_LENGTH_MARKET_DATA!r}\n"
        "for chunks in ([data], [data[:7], data[7:]], [data + data]):\n"
        "    dec = P.FrameDecoder()\n"
        "    try:\n"
        "        for c in chunks: dec.feed(c)\n"
        "    except P.ProtocolError as exc:\n"
        "        assert 'bad length 0' in str(exc), exc\n"
        "    else:\n"
        "        sys.exit('accepted')\n"
        "print('refused')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LATENTSPEED_PURE_PYTHON"}
    if pure:
        env["LATENTSPEED_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "refused", out.stderr[-2000:]


def test_malformed_header_is_caught_before_the_body_arrives():
    dec = P.FrameDecoder()
    with pytest.raises(P.ProtocolError, match="unknown message type 99"):
        dec.feed(struct.pack("<HHIQ", 1000, 99, 1, 0))


def test_trailing_partial_message_is_reported():
    data = _stream()
    with pytest.raises(P.ProtocolError, match="truncated message: 10 trailing bytes"):
        P.split_messages(data + data[:10])


def test_used_ids_are_exact_for_any_order_and_compact_for_increasing_ones():
    from latentspeed_mock_exchange.server import MockExchange, _Connection

    conn = _Connection(MockExchange())
    rng = random.Random(1)
    ids = [rng.randrange(1, 300) for _ in range(2000)] + list(range(500, 100_000))
    seen = set()
    for cl in ids:
        assert conn.claim_id(cl) == (cl not in seen), cl
        seen.add(cl)
    assert len(conn.used_ids) < 400  # the increasing run is kept as a range, not a set


def _md_frame(entries):
    body = P.MD_HEAD.pack(1, len(entries)) + b"".join(P.MD_ENTRY.pack(*e) for e in entries)
    return P.market_data_header(len(body), 1, 1) + body


def test_decode_book_gives_float_levels_best_first():
    bids = [(P.to_fixed(100 - i), P.to_fixed(1 + i)) for i in range(5)]
    asks = [(P.to_fixed(101 + i), P.to_fixed(2 + i)) for i in range(5)]
    sid, b, a = P.decode_book(P.encode_market_data(1, 1, 7, bids, asks))
    assert sid == 7
    assert b == [[100.0 - i, 1.0 + i] for i in range(5)]
    assert a == [[101.0 + i, 2.0 + i] for i in range(5)]
    assert all(type(lv) is list for lv in b + a)  # [price, qty] lists, as L2Book.top_bids gives
    assert P.decode_book(_md_frame([]))[1:] == ([], [])


@pytest.mark.parametrize("seed", range(40))
def test_decode_book_normalises_any_foreign_snapshot_like_a_book(seed):
    """Unordered, interleaved, zero or repeated levels: exactly what L2Book.load_snapshot would hold."""
    from latentspeed_core.book import L2Book

    rng = random.Random(seed)
    entries = [
        (P.to_fixed(rng.choice([99.0, 99.5, 98.0, 97.5, 100.0])), rng.choice([0, P.to_fixed(rng.random() + 0.1)]),
         0, i)
        for i in range(rng.randint(0, 6))
    ] + [
        (P.to_fixed(rng.choice([101.0, 101.5, 102.0, 103.5])), rng.choice([0, P.to_fixed(rng.random() + 0.1)]), 1, i)
        for i in range(rng.randint(0, 6))
    ]  # fmt: skip
    rng.shuffle(entries)
    _sid, b, a = P.decode_book(_md_frame(entries))
    book = L2Book()
    book.load_snapshot(
        [(p / P.SCALE, q / P.SCALE) for p, q, s, _ in entries if s == 0],
        [(p / P.SCALE, q / P.SCALE) for p, q, s, _ in entries if s == 1],
    )
    assert b == [[p, pytest.approx(q)] for p, q in book.top_bids(100)]
    assert a == [[p, pytest.approx(q)] for p, q in book.top_asks(100)]


def test_the_compiled_decoder_is_built():
    """With a compiler the suite must exercise _fastproto.c (a failed build would test the Python
    decoder twice); without one, the Python decoder must be what runs."""
    if expect_compiled():
        assert P._fastproto is not None and P.decode_book is P._fastproto.decode_book
    else:
        assert P._fastproto is None and P.decode_book is P._decode_book_py


_levels = st.lists(
    st.tuples(
        st.integers(-(2**63), 2**63 - 1) | st.integers(1, 10**12), st.integers(-5, 10**12), st.integers(0, 3)
    ),
    max_size=25,
)


@compiled_only
@settings(max_examples=400, deadline=None)
@given(
    bids=st.lists(st.integers(1, 10**12), max_size=12, unique=True),
    asks=st.lists(st.integers(1, 10**12), max_size=12, unique=True),
    qtys=st.lists(st.integers(1, 10**12), min_size=24, max_size=24),
    junk=_levels,
    canonical=st.booleans(),
    off=st.integers(0, 5),
)
def test_compiled_decode_book_equals_the_python_one(bids, asks, qtys, junk, canonical, off):
    """Canonical snapshots (the C path) and anything else (the fallback) decode exactly as in Python."""
    if canonical:
        entries = [(p, qtys[i], 0, i) for i, p in enumerate(sorted(bids, reverse=True))]
        entries += [(p, qtys[12 + i], 1, i) for i, p in enumerate(sorted(asks))]
    else:
        entries = [(p, q, s, 0) for p, q, s in junk]
    frame = b"\xff" * off + _md_frame(entries) + b"\xee" * 3
    expected = _outcome(P._decode_book_py, frame, off)
    assert _outcome(P.decode_book, frame, off) == expected
    assert _outcome(P.decode_book, memoryview(frame), off) == expected


def _outcome(decode, frame, off):
    """The decoded snapshot, or that it was refused (a price <= 0, a negative size, a crossed book)."""
    try:
        return decode(frame, off)
    except P.ProtocolError:
        return "refused"


@pytest.mark.parametrize(
    ("bids", "asks", "why"),
    [
        ([(0, 10)], [(101, 1)], "impossible level"),
        ([(-5 * 10**8, 10)], [(101, 1)], "impossible level"),
        ([(100, -3)], [(101, 1)], "impossible level"),
        ([(101, 1)], [(100, 1)], "crossed book"),
        ([(100, 1)], [(100, 1)], "crossed book"),
    ],
)
@pytest.mark.parametrize("decode", ["compiled", "python"])
def test_impossible_snapshots_are_refused_not_decoded(bids, asks, why, decode):
    """Issue 18: the mock decoders let negative prices and crossed books into feeds and the engine."""
    fn = P.decode_book if decode == "compiled" else P._decode_book_py
    with pytest.raises(P.ProtocolError, match=why):
        fn(P.encode_market_data(1, 0, 1, bids, asks), 0)


@compiled_only
def test_compiled_splitter_knows_the_protocol_sizes():
    assert P._fastproto.sizes() == tuple(0 if s is None else s for s in P._SIZE_BY_TYPE)


_any_message = st.one_of(
    st.builds(P.encode_heartbeat, st.integers(0, 2**32 - 1), st.integers(0, 2**63)),
    st.builds(P.encode_cancel, st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9),
              st.integers(0, 9)),
    st.builds(lambda n, s: P.encode_market_data(s, 1, 7, [(100 - i, 1) for i in range(n)], [(200 + i, 1) for i in range(n)]),
              st.integers(0, 12), st.integers(0, 99)),
    st.builds(lambda b: bytes(b), st.binary(min_size=0, max_size=40)),  # junk: the errors must match too
)  # fmt: skip


@compiled_only
@settings(max_examples=300, deadline=None)
@given(msgs=st.lists(_any_message, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_compiled_frame_splitting_equals_the_python_one(msgs, cuts):
    """Any byte stream, cut into any reads: same messages, same pending bytes, same errors."""
    stream = b"".join(msgs)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    reads = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    def run(split):
        saved = P._split_frames
        P._split_frames = split
        try:
            dec, got = P.FrameDecoder(), []
            for r in reads:
                got += [(t, bytes(buf[off : off + 16])) for t, buf, off in dec.feed(r)]
            return got, dec.pending()
        except P.ProtocolError as exc:
            return "error", str(exc)
        finally:
            P._split_frames = saved

    assert run(P._fastproto.split_frames) == run(None)


@pytest.mark.parametrize("decode", ["compiled", "python"])
def test_fixed_point_decodes_to_the_shortest_form_without_float_noise(decode):
    """Issue 17: 299720000000 * 1e-8 printed as 2997.2000000000003; dividing gives 2997.2."""
    fn = P.decode_book if decode == "compiled" else P._decode_book_py
    rng = random.Random(5)
    prices = [299720000000, 5001350000000, 10000001] + [rng.randrange(1, 10**15) for _ in range(300)]
    qtys = [46540000, 1, 123456789] + [rng.randrange(1, 10**12) for _ in range(300)]
    for p, q in zip(prices, qtys, strict=True):
        _sid, bids, _asks = fn(P.encode_market_data(1, 0, 1, [(p, q)], []), 0)
        assert bids == [[p / P.SCALE, q / P.SCALE]]
    _sid, bids, _ = fn(P.encode_market_data(1, 0, 1, [(299720000000, 46540000)], []), 0)
    assert repr(bids[0]) == "[2997.2, 0.4654]"
    assert P.from_fixed(299720000000) == 2997.2


def test_fixed_point_beyond_2_53_decodes_exactly_as_python_divides_it():
    """Found by fuzzing: (double)v / 1e8 rounds twice above 2**53; Python's int / int rounds once."""
    p = 3708801759493319391  # > 2**53, where float(p) / 1e8 != p / 10**8
    bids = [(100 * P.SCALE, 1)]
    asks = [(101 * P.SCALE, 1), (p, 12672975316713472)]
    frame = P.encode_market_data(1, 0, 1, bids, asks)
    assert P.decode_book(frame, 0) == P._decode_book_py(frame, 0)
    assert P.decode_book(frame, 0)[2][1] == [p / P.SCALE, 12672975316713472 / P.SCALE]
