"""Property tests of L2Book (compiled) and PyL2Book (pure Python) against a naive dict reference."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core.book import CL2Book, L2Book, PyL2Book
from latentspeed_core.testing import expect_compiled

prices = st.integers(1, 400).map(lambda x: x / 100)  # tick 0.01, many collisions
qtys = st.one_of(st.just(0.0), st.integers(1, 10_000).map(lambda x: x / 1000))
updates = st.lists(st.tuples(st.booleans(), prices, qtys), max_size=300)
levels = st.lists(st.tuples(prices, qtys), max_size=60)


def windows(base: type) -> list[type]:
    """``base`` with the default window, and tiny windows so that trimming and refilling happen constantly."""
    return [base, *(type(f"{base.__name__}W{w}", (base,), {"__slots__": (), "window": w}) for w in (1, 3, 8))]


BOOKS = windows(PyL2Book) + (windows(L2Book) if L2Book is not PyL2Book else [])


def test_the_compiled_book_is_built():
    """With a compiler the suite must exercise the C book (a failed build would silently test the
    fallback twice); without one, the fallback must be what runs."""
    if expect_compiled():
        assert CL2Book is not None and issubclass(L2Book, CL2Book)
    else:
        assert L2Book is PyL2Book


class Ref:
    def __init__(self, bids=(), asks=()):
        self.bids = {p: q for p, q in bids if q > 0}
        self.asks = {p: q for p, q in asks if q > 0}

    def set(self, is_bid, p, q):
        side = self.bids if is_bid else self.asks
        if q > 0:
            side[p] = q
        else:
            side.pop(p, None)

    def crossed(self):
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def check(book: L2Book, ref: Ref) -> None:
    ebids = sorted(ref.bids.items(), reverse=True)
    easks = sorted(ref.asks.items())
    assert book.bid_prices() == [p for p, _ in ebids]
    assert book.ask_prices() == [p for p, _ in easks]
    for n in (1, 5, 10, 1000):
        assert book.top_bids(n) == [list(x) for x in ebids[:n]]
        assert book.top_asks(n) == [list(x) for x in easks[:n]]
    assert book.best_bid() == (ebids[0] if ebids else None)
    assert book.best_ask() == (easks[0] if easks else None)
    assert (book.bid_levels, book.ask_levels, len(book)) == (len(ebids), len(easks), len(ebids) + len(easks))
    assert book.is_crossed() == ref.crossed()
    for p in list(ref.bids)[:5]:
        assert book.bid_qty(p) == ref.bids[p]


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=60, deadline=None)
@given(bids=levels, asks=levels, ops=updates)
def test_any_update_stream_matches_reference(cls, bids, asks, ops):
    book, ref = cls("X-Y"), Ref(bids, asks)
    book.load_snapshot(bids, asks)
    check(book, ref)
    for i, (is_bid, p, q) in enumerate(ops):
        book.set(is_bid, p, q)
        ref.set(is_bid, p, q)
        if i % 7 == 0:
            check(book, ref)
    check(book, ref)


def best_first(pairs: list, is_bid: bool, swap: int | None) -> list:
    """Levels as venues send a snapshot: one per price, best first; ``swap`` puts one pair out of order."""
    out = sorted(dict(pairs).items(), reverse=is_bid)
    if swap is not None and len(out) > 1:
        i = swap % (len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=60, deadline=None)
@given(
    bids=st.lists(st.tuples(prices, qtys), max_size=300),
    asks=st.lists(st.tuples(prices, qtys), max_size=300),
    swap=st.one_of(st.none(), st.integers(0, 1000)),
    drops=st.lists(st.integers(0, 299), max_size=20),
    ops=updates,
)
def test_best_first_snapshots_match_reference(cls, bids, asks, swap, drops, ops):
    """A snapshot in the venue's order (deeper than the window, zero sizes in it, or one level out of
    order), levels at any depth of it deleted (the window's edge among them), and updates after it:
    the same book as any other order of its levels."""
    bids, asks = best_first(bids, True, swap), best_first(asks, False, swap)
    book, ref = cls("X-Y"), Ref(bids, asks)
    book.load_snapshot(bids, asks)
    check(book, ref)
    for i in drops:
        for is_bid, side in ((True, bids), (False, asks)):
            if side:
                p = side[i % len(side)][0]
                book.set(is_bid, p, 0.0)
                ref.set(is_bid, p, 0.0)
        check(book, ref)
    for i, (is_bid, p, q) in enumerate(ops):
        book.set(is_bid, p, q)
        ref.set(is_bid, p, q)
        if i % 5 == 0:
            check(book, ref)
    check(book, ref)


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=60, deadline=None)
@given(bids=levels, asks=levels, batches=st.lists(st.tuples(levels, levels), max_size=30))
def test_batched_updates_match_reference(cls, bids, asks, batches):
    """update_bids/update_asks (one call per venue message) equal level-by-level application."""
    book, ref = cls(), Ref(bids, asks)
    book.load_snapshot(bids, asks)
    for b, a in batches:
        book.update_bids(b)
        book.update_asks(a)
        for p, q in b:
            ref.set(True, p, q)
        for p, q in a:
            ref.set(False, p, q)
        assert book.best_bid() == (max(ref.bids.items()) if ref.bids else None)
        assert book.best_ask() == (min(ref.asks.items()) if ref.asks else None)
    check(book, ref)


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=60, deadline=None)
@given(ops=updates)
def test_valid_streams_never_cross(cls, ops):
    """A venue's valid stream keeps the book uncrossed after every update; so must we."""
    book, ref = cls(), Ref()
    for is_bid, p, q in ops:
        ref.set(is_bid, p, q)
        if ref.crossed():  # not a valid venue update: leave it out of the stream
            ref.set(is_bid, p, book.bid_qty(p) if is_bid else book.ask_qty(p))
            continue
        if is_bid:
            book.set_bid(p, q)
        else:
            book.set_ask(p, q)
        assert not book.is_crossed()
    check(book, ref)


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=50, deadline=None)
@given(ops=updates)
def test_clear_and_reload(cls, ops):
    book = cls()
    for is_bid, p, q in ops:
        book.set(is_bid, p, q)
    book.clear()
    check(book, Ref())
    book.load_snapshot([(1.0, 2.0), (1.5, 0.0)], [(2.0, 1.0)])
    check(book, Ref([(1.0, 2.0)], [(2.0, 1.0)]))


@pytest.mark.parametrize("cls", BOOKS)
@settings(max_examples=60, deadline=None)
@given(bids=levels, asks=levels, ops=updates, n=st.sampled_from([1, 3, 10, 64]), spoil=st.integers(0, 6))
def test_top_levels_after_every_update_even_when_a_consumer_changed_them(cls, bids, asks, ops, n, spoil):
    """The compiled book answers top_bids/top_asks with the previous answer's [price, qty] lists for
    levels that did not change (a message's levels are mostly the last one's). Every answer is still
    the book's, whatever a consumer did to the lists it was given before."""
    book, ref = cls("X-Y"), Ref(bids, asks)
    book.load_snapshot(bids, asks)
    last_b, last_a = book.top_bids(n), book.top_asks(n)
    for i, (is_bid, p, q) in enumerate(ops):
        book.set(is_bid, p, q)
        ref.set(is_bid, p, q)
        got_b, got_a = book.top_bids(n), book.top_asks(n)
        assert got_b == [list(x) for x in sorted(ref.bids.items(), reverse=True)[:n]]
        assert got_a == [list(x) for x in sorted(ref.asks.items())[:n]]
        if cls is not PyL2Book:  # unchanged levels are the same lists; changed ones are new
            for got, last in ((got_b, last_b), (got_a, last_a)):
                before = {id(lv): tuple(lv) for lv in last}
                for lv in got:
                    assert before.get(id(lv), tuple(lv)) == tuple(lv)
        if got_b and i % 7 == spoil:  # a consumer changes what it was given
            got_b[0][1] = -1.0
            if len(got_b) > 1:
                got_b[1].append(0.0)
        last_b, last_a = got_b, got_a
    assert book.top_bids(n) == [list(x) for x in sorted(ref.bids.items(), reverse=True)[:n]]


def test_unchanged_top_levels_are_the_previous_answers_lists():
    if CL2Book is None:
        pytest.skip("no compiled book in this build")
    book = CL2Book("X-Y")
    book.load_snapshot([(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)], [(101.0, 1.0)])
    first = book.top_bids(3)
    book.set_bid(99.0, 5.0)
    second = book.top_bids(3)
    assert second == [[100.0, 1.0], [99.0, 5.0], [98.0, 3.0]]
    assert second[0] is first[0] and second[2] is first[2] and second[1] is not first[1]
    second[0][1] = 7.0  # changed by a consumer: not handed out again
    third = book.top_bids(3)
    assert third == [[100.0, 1.0], [99.0, 5.0], [98.0, 3.0]] and third[0] is not second[0]


_REENTRANT = """
from latentspeed_core.book import CL2Book
book = CL2Book("X-Y")
book.load_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)])
seen = []


class Reader:
    def __del__(self):
        seen.append(book.top_bids(2))


# The consumer spoils the second level's list and drops the answer: the book alone holds both lists,
# keeps them as spares when it next answers and releases them the answer after (the first freed before
# the second runs the consumer's code).
book.top_bids(2)[1].append(Reader())
book.set_bid(100.0, 4.0)
assert book.top_bids(2) == [[100.0, 4.0], [99.0, 2.0]]
assert seen == []
book.set_bid(99.0, 3.0)
assert book.top_bids(2) == [[100.0, 4.0], [99.0, 3.0]]
assert seen == [[[100.0, 4.0], [99.0, 3.0]]], seen

# A collection started by one of top_bids' own allocations runs code that reads the book again
# (a gc callback here; a finaliser in the wild): every answer must still be the book's.
import gc

inner = []


def during_collection(phase, info):
    if phase == "start" and not inner:
        inner.append(1)
        try:
            seen.append(len(book.top_bids(1)))  # shallower than the answer being built; dropped
        finally:
            inner.pop()


book.load_snapshot([(100.0 - i, 1.0 + i) for i in range(5)], [(101.0, 1.0)])
gc.callbacks.append(during_collection)
gc.set_threshold(1)
try:
    for step in range(200):
        book.set_bid(100.0 - step % 5, 1.0 + step % 7)
        want = [[p, book.bid_qty(p)] for p in book.bid_prices()[:3]]
        assert book.top_bids(3) == want, step  # (the answer is dropped at once: the cache alone holds its lists)
finally:
    gc.set_threshold(700)
    gc.callbacks.remove(during_collection)
assert set(seen[1:]) == {1} and len(seen) > 100
print("ok")
"""


def test_a_list_freed_by_the_next_answer_may_read_the_book_again():
    """A consumer's object in a handed-out list runs code when the book lets go of that list (its next
    answer); that code may read the same book, and must find it whole. Run under the debug allocator,
    which turns a read of a freed list into a crash rather than a quiet wrong answer."""
    if CL2Book is None:
        pytest.skip("no compiled book in this build")
    env = {**os.environ, "PYTHONMALLOC": "debug"}
    done = subprocess.run([sys.executable, "-X", "dev", "-c", _REENTRANT], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 4), st.sampled_from(["drop", "answer", "pair", "float"])),
        min_size=1,
        max_size=60,
    )
)
def test_lists_a_consumer_holds_never_change(steps):
    """The book refills in place only a level's list that nothing but its spares references (and whose
    floats nothing else does): every answer, pair or float a consumer keeps keeps its values."""
    if CL2Book is None:
        pytest.skip("no compiled book in this build")
    book = CL2Book("X-Y")
    book.load_snapshot([(100.0 - i, 1.0 + i) for i in range(8)], [(200.0, 1.0)])
    kept = []
    for level, size, keep in steps:
        book.set_bid(100.0 - level, float(size))
        answer = book.top_bids(5)
        held = {"drop": None, "answer": answer, "pair": answer[0], "float": answer[-1][1]}[keep]
        if held is not None:
            kept.append((held, repr(held)))
    assert all(repr(held) == text for held, text in kept)


def test_a_changed_levels_list_is_refilled_once_nothing_holds_it():
    if CL2Book is None:
        pytest.skip("no compiled book in this build")
    book = CL2Book("X-Y")
    book.load_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)])
    first = id(book.top_bids(2)[0])
    book.set_bid(100.0, 3.0)
    second = id(book.top_bids(2)[0])
    book.set_bid(100.0, 4.0)
    third = book.top_bids(2)
    assert second != first and id(third[0]) == first and third == [[100.0, 4.0], [99.0, 2.0]]
