"""Impossible levels never enter a book (issue 18, defect 2).

A price that is not finite and > 0, or a size that is not finite and >= 0, is a malformed level:
every way into a book (``apply_json``, ``apply_levels``, ``update_bids``/``update_asks``,
``load_snapshot``, ``set_bid``/``set_ask``) refuses it with ``ValueError`` and leaves the book exactly
as it was, both sides checked before either changes. The compiled book and the pure-Python
reference refuse the same inputs with the same message and end in the same state.

The book is the recorded Bybit XRPUSDT 500-level snapshot; the bad levels are the issue's inputs.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core import book as book_mod
from latentspeed_core.book import PyL2Book, SnapshotBook, check_levels
from latentspeed_core.testing import expect_compiled, fixtures_dir

try:  # present whenever the extension was built, even under LATENTSPEED_PURE_PYTHON
    from latentspeed_core._book import CL2Book
except ImportError:
    CL2Book = None

INF = math.inf
NAN = math.nan
BOOKS = [PyL2Book] + ([CL2Book] if CL2Book is not None else [])
_SNAP = json.loads(
    (fixtures_dir() / "bybit" / "seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl")
    .read_text()
    .splitlines()[0]
)["data"]
SNAP_BIDS = [(float(p), float(q)) for p, q in _SNAP["b"]]
SNAP_ASKS = [(float(p), float(q)) for p, q in _SNAP["a"]]

#: Raw JSON level texts ``[price, qty]`` no book may hold: the issue's inputs and their relatives.
BAD_JSON_LEVELS = [
    '["1.94","inf"]',
    '["-5","3"]',
    '["0","3"]',
    '["inf","3"]',
    '["1e999","3"]',
    '["1.94","1e999"]',
    '["-0","3"]',
    '["-inf","3"]',
    '["Infinity","3"]',
    '["nan","3"]',
    '["1.94","NaN"]',
    '["1.94","-2"]',
    '["1.94","-inf"]',
    "[1e999, 3]",  # bare numbers: JSON has no inf, but 1e999 reads as one
    "[-5, 3]",
    "[0, 3]",
    "[1.94, -2]",
]
BAD_LEVELS = [
    (INF, 3.0),
    (-5.0, 3.0),
    (0.0, 3.0),
    (-0.0, 3.0),
    (-INF, 3.0),
    (NAN, 3.0),
    (1.94, INF),
    (1.94, -2.0),
    (1.94, NAN),
    (1.94, -INF),
    (-3000.0, 1.0),
]


def test_the_compiled_book_takes_part():
    """Where the extension must exist, the equality checks below must compare it, not skip it."""
    if expect_compiled():
        assert CL2Book is not None and book_mod.L2Book.__mro__[1] is CL2Book


def state(book) -> tuple:
    n = len(book)
    return (
        book.top_bids(n),
        book.top_asks(n),
        book.bid_levels,
        book.ask_levels,
        book.best_bid(),
        book.best_ask(),
    )


def loaded(cls):
    book = cls("XRP-USDT")
    book.load_snapshot(SNAP_BIDS, SNAP_ASKS)
    return book


def assert_sane(book) -> None:
    bids, asks = book.top_bids(len(book)), book.top_asks(len(book))
    assert all(0 < p < INF and 0 < q < INF for p, q in bids + asks)
    assert not book.is_crossed()


def outcome(fn, *args) -> str | None:
    """None if ``fn(*args)`` succeeded, else the ValueError's text (any other exception fails the test)."""
    try:
        fn(*args)
    except ValueError as exc:
        return str(exc)
    return None


# -- every intake refuses, and the book does not change --------------------------------------------
@pytest.mark.parametrize("cls", BOOKS)
@pytest.mark.parametrize("bad", BAD_JSON_LEVELS)
@pytest.mark.parametrize("side", ["bids", "asks"])
def test_apply_json_refuses_an_impossible_level_with_the_book_untouched(cls, bad, side):
    book = loaded(cls)
    before = state(book)
    good_bids = '["1.9531","1"],["1.9400","7"]'  # a change to the best bid and one beyond the window
    good_asks = '["1.9532","1"],["1.9700","7"]'
    bids = f"[{good_bids},{bad}]" if side == "bids" else f"[{good_bids}]"
    asks = f"[{good_asks},{bad}]" if side == "asks" else f"[{good_asks}]"
    with pytest.raises(ValueError):
        book.apply_json(bids.encode(), asks.encode())
    assert state(book) == before  # not even the valid levels before the bad one, on either side
    book.apply_json(f"[{good_bids}]".encode(), f"[{good_asks}]".encode())  # still usable
    assert book.best_bid() == (1.9531, 1.0) and book.best_ask() == (1.9532, 1.0)
    assert_sane(book)


@pytest.mark.parametrize("cls", BOOKS)
@pytest.mark.parametrize("bad", BAD_LEVELS)
@pytest.mark.parametrize(
    "intake",
    [
        "apply_levels_bids",
        "apply_levels_asks",
        "update_bids",
        "update_asks",
        "set_bid",
        "set_ask",
        "snapshot",
    ],
)
def test_every_intake_refuses_an_impossible_level_with_the_book_untouched(cls, bad, intake):
    book = loaded(cls)
    before = state(book)
    good = [(1.9531, 1.0), (1.94, 7.0)]
    calls = {
        "apply_levels_bids": lambda: book.apply_levels([*good, bad], [(1.9532, 1.0)]),
        "apply_levels_asks": lambda: book.apply_levels(good, [(1.9532, 1.0), bad]),
        "update_bids": lambda: book.update_bids([*good, bad]),
        "update_asks": lambda: book.update_asks([(1.9532, 1.0), bad]),
        "set_bid": lambda: book.set_bid(*bad),
        "set_ask": lambda: book.set(False, *bad),
        "snapshot": lambda: book.load_snapshot([(1.5, 1.0)], iter([(2.5, 1.0), bad])),
    }
    with pytest.raises(ValueError, match="impossible level"):
        calls[intake]()
    assert state(book) == before


@pytest.mark.parametrize("cls", BOOKS)
def test_the_issue_deltas_after_a_snapshot_publish_nothing_impossible(cls):
    """Bybit after a snapshot: the deltas the issue found published (errors 0, resyncs 0) all raise."""
    book = loaded(cls)
    before = state(book)
    for bids, asks in [
        (b'[["1.94","inf"]]', b"[]"),
        (b'[["-5","3"]]', b"[]"),
        (b'[["0","3"]]', b"[]"),
        (b"[]", b'[["inf","3"]]'),
    ]:
        with pytest.raises(ValueError, match="impossible level"):
            book.apply_json(bids, asks)
    assert state(book) == before
    assert_sane(book)


@pytest.mark.parametrize("cls", BOOKS)
def test_possible_extremes_are_still_accepted(cls):
    """The check refuses what no venue can send, nothing else: zero and -0 sizes delete, the
    smallest and largest finite prices are prices."""
    book = loaded(cls)
    book.apply_json(b'[["1.9531","0"],["1.9530","-0"]]', b'[["5e-324","1"],["1.7976931348623157e308","2"]]')
    assert book.bid_qty(1.9531) == 0.0 and book.bid_qty(1.9530) == 0.0
    assert book.ask_qty(5e-324) == 1.0 and book.ask_qty(1.7976931348623157e308) == 2.0
    book.set_bid(1.9529, 0.0)
    assert book.bid_qty(1.9529) == 0.0


def test_snapshot_book_refuses_too():
    book = SnapshotBook("X")
    book.load_snapshot([(1.0, 1.0)], [(2.0, 1.0)])
    with pytest.raises(ValueError):
        book.apply_levels([(0.0, 1.0)], [])
    assert book.best_bid() == (1.0, 1.0)


def test_check_levels():
    levels = [(1.0, 0.0), (2.0, 3.0)]
    assert check_levels(levels) is levels
    assert check_levels(iter(levels)) == levels  # an iterator is read once, into a list
    for bad in BAD_LEVELS:
        with pytest.raises(ValueError, match="impossible level"):
            check_levels([(1.0, 1.0), bad])


# -- compiled and Python refuse alike ----------------------------------------------------------
@pytest.mark.skipif(CL2Book is None, reason="the extension is not built (test_the_compiled_book_takes_part)")
@pytest.mark.parametrize("bad", BAD_LEVELS)
def test_compiled_and_python_refuse_alike_with_the_same_message(bad):
    for intake in ("apply_levels", "update_bids", "update_asks", "set_bid", "set_ask", "load_snapshot"):
        results = []
        for cls in (CL2Book, PyL2Book):
            book = loaded(cls)
            fn = getattr(book, intake)
            if intake in ("apply_levels", "load_snapshot"):
                got = outcome(lambda fn=fn: fn([(1.9, 1.0)], [bad]))
            elif intake.startswith("set"):
                got = outcome(lambda fn=fn: fn(*bad))
            else:
                got = outcome(lambda fn=fn: fn([(1.9, 1.0), bad]))
            results.append((got, state(book)))
        assert results[0][0] is not None and results[0][0].startswith("impossible level")
        assert repr(results[0]) == repr(results[1]), intake  # repr: NaN != NaN inside tuples


@pytest.mark.skipif(CL2Book is None, reason="the extension is not built (test_the_compiled_book_takes_part)")
@pytest.mark.parametrize("bad", BAD_JSON_LEVELS)
def test_compiled_and_python_apply_json_refuse_alike(bad):
    results = []
    for cls in (CL2Book, PyL2Book):
        book = loaded(cls)
        got = outcome(
            lambda book=book: book.apply_json(b'[["1.9531","1"]]', f'[["1.9532","1"],{bad}]'.encode())
        )
        results.append((got, state(book)))
    assert results[0][0] is not None and results[1][0] is not None
    if "1e999" not in bad or '"' in bad:  # a bare 1e999 is not JSON: the Python parser says so instead
        assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]


_price = st.one_of(
    st.sampled_from([1.9531, 1.94, 1.9532, 1.97, 0.0, -0.0, -5.0, INF, -INF, NAN, 5e-324]),
    st.integers(19000, 20000).map(lambda x: x / 10_000),
)
_size = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -2.0, INF, -INF, NAN]), st.integers(0, 10_000).map(float))
_levels = st.lists(st.tuples(_price, _size), max_size=6)
_kinds = st.sampled_from(["levels", "json", "bids", "asks", "set"])


def send(book, kind: str, bids: list, asks: list) -> None:
    """One venue message through one intake."""
    if kind == "levels":
        book.apply_levels(bids, asks)
    elif kind == "json":
        raw_b, raw_a = (json.dumps([[repr(p), repr(q)] for p, q in lv]).encode() for lv in (bids, asks))
        book.apply_json(raw_b, raw_a)
    elif kind == "bids":
        book.update_bids(bids)
    elif kind == "asks":
        book.update_asks(asks)
    else:
        for p, q in bids[:1]:
            book.set_bid(p, q)


@pytest.mark.skipif(CL2Book is None, reason="the extension is not built (test_the_compiled_book_takes_part)")
@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(_kinds, _levels, _levels), max_size=12))
def test_compiled_and_python_books_agree_on_mixed_good_and_bad_messages(ops):
    """Random messages, some with impossible levels: both books take or refuse each one alike,
    and hold the same, always sane, book after each."""
    books = [loaded(CL2Book), loaded(PyL2Book)]
    for kind, bids, asks in ops:
        # valid messages keep the book uncrossed: bids at or below the best bid, asks at or above the best ask
        bids = [(p, q) for p, q in bids if p <= 1.9531 or not (0 < p < INF)]
        asks = [(p, q) for p, q in asks if p >= 1.9532 or not (0 < p < INF)]
        got = [outcome(send, book, kind, bids, asks) for book in books]
        assert got[0] == got[1]
        checked = {"levels": bids + asks, "json": bids + asks, "bids": bids, "asks": asks, "set": bids[:1]}[
            kind
        ]
        assert (got[0] is None) == all(0 < p < INF and 0 <= q < INF for p, q in checked)
        assert state(books[0]) == state(books[1])
        assert_sane(books[0])
