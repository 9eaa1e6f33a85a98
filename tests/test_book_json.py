"""``apply_json``/``parse_levels``: venue level arrays parsed straight from frame bytes.

The compiled parser must give exactly ``float(text)`` for every number (its fast path is only
taken where one IEEE operation rounds correctly), and reject anything malformed before the book
changes, in both implementations.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from latentspeed_core import book as book_mod
from latentspeed_core.book import L2Book, PyL2Book
from latentspeed_core.testing import mangled

PARSERS = [book_mod.parse_levels, book_mod._parse_levels_py]
BOOKS = [L2Book, PyL2Book]

decimal_text = st.one_of(
    st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False).map(str),
    st.decimals(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False).map(str),
    st.floats(min_value=0, max_value=1e12, allow_nan=False).map(repr),
    st.integers(0, 10**20).map(str),
    st.from_regex(r"\A-?[0-9]{1,25}\.[0-9]{0,30}\Z"),
    st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,4})?[eE][-+]?[0-9]{1,2}\Z"),
)


@pytest.mark.parametrize("parse", PARSERS)
@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(decimal_text, decimal_text), max_size=20),
    form=st.sampled_from(["compact", "spaced", "bare"]),
)
# a token of 64 characters and one of 300 (longer than the parser's stack buffer: read from the heap)
@example(pairs=[("0E-8", "6.86080148601118237826449361483302231916855566323816415069204E-9")], form="compact")
@example(pairs=[("1", "1" * 300)], form="bare")
def test_numbers_parse_exactly_as_float(parse, pairs, form):
    """Compact quoted arrays are the venues' form (the compiled parser's one-pass path), spaced ones
    and bare numbers its general path."""
    if form != "bare":
        raw = json.dumps([[p, q] for p, q in pairs], separators=(",", ":") if form == "compact" else None).encode()
    else:  # bare JSON numbers (only those JSON allows)
        pairs = [(p, q) for p, q in pairs if _json_number(p) and _json_number(q)]
        raw = ("[" + ",".join(f"[{p}, {q}]" for p, q in pairs) + "]").encode()
    assert parse(raw) == [(float(p), float(q)) for p, q in pairs]


def _json_number(t: str) -> bool:
    try:
        return isinstance(orjson.loads(t), int | float)
    except orjson.JSONDecodeError:
        return False


@pytest.mark.parametrize("parse", PARSERS)
def test_real_venue_shapes(parse):
    assert parse(b'[["67000.10000000","0.00100000"],["66999.9","0"]]') == [(67000.1, 0.001), (66999.9, 0.0)]
    assert parse(b' [ [ "1.5" , "2" ] ] ') == [(1.5, 2.0)]
    assert parse(b"[]") == []
    # the edges of the one-pass path: each left to the general parser, which reads them as float() does
    assert parse(b'[["0.5","1"],["10","0"]]') == [(0.5, 1.0), (10.0, 0.0)]
    assert parse(b'[["00.5","1"]]') == [(0.5, 1.0)]  # a leading zero (not plain)
    assert parse(b'[["1234567890123456789","1"]]') == [(1234567890123456789.0, 1.0)]  # 19 digits > 2**53
    assert parse(b'[["9007199254740993","1"]]') == [(9007199254740992.0, 1.0)]  # 2**53 + 1
    assert parse(b'[["0.12345678901234567890123","1"]]') == [(float("0.12345678901234567890123"), 1.0)]
    assert parse(b'[["12345678.12345678","0.00000001"]]') == [(12345678.12345678, 1e-8)]  # eight and eight
    assert parse(b'[["-1","1"],["0","1"]]') == [(-1.0, 1.0), (0.0, 1.0)]  # impossible levels: the general path
    assert parse(b'[["1e-3","-2.50"]]') == [(0.001, -2.5)]
    assert parse(memoryview(b'[["3","4"]]')) == [(3.0, 4.0)]


def test_one_load_numbers_read_as_float_at_every_length():
    """The compiled reader takes a quoted number with up to 7 digits before the point and 8 after in
    one load per part (both parts in one conversion when 8 digits hold them), where the bytes after
    it can be read; every length around those limits, leading zeros, and each place the array can
    end (fewer bytes left than a load) read exactly as float() does."""
    texts = []
    for n in range(0, 10):
        for f in [None, *range(0, 11)]:
            whole = "".join(str((i * 7 + 3) % 10) for i in range(n))
            for lead in ("", "0"):
                t = lead + whole + ("" if f is None else "." + "".join(str((i * 3 + 1) % 10) for i in range(f)))
                texts.append(t)
    texts += ["0", "0.0", "0.00000001", "9999999.99999999", "10000000.5", "1.123456789", "00", "01.5", "."]
    for t in texts:
        for raw in (f'[["{t}","{t}"],["1","2"]]', f'[["1","{t}"]]', f'[["{t}","1"]]', f'[["{t}",  "1"]]'):
            try:
                want = [(float(p), float(q)) for p, q in json.loads(raw)]
            except ValueError:
                want = None
            for parse in PARSERS:
                try:
                    got = parse(raw.encode())
                except ValueError:
                    got = None
                assert got == want, (parse, raw)


def test_fractions_with_trailing_zeros_read_as_float():
    """The compiled reader drops a fraction's trailing zeros before converting ("61837.63000000" as
    6183763 / 10**2): every count of significant and trailing fraction digits, zeros inside the
    fraction and an all-zero one, read exactly as float() does and as the same text without them."""
    for n in range(1, 8):
        whole = "".join(str((i * 7 + 3) % 10 or 1) for i in range(n))
        for f in range(1, 9):
            for sig in range(0, f + 1):
                for inner in ("9", "0"):  # a zero just before the trailing ones, or not
                    digits = "".join(str((i * 3 + 1) % 10) for i in range(sig - 1)) + inner if sig else ""
                    frac = digits.ljust(f, "0")
                    t = f"{whole}.{frac}"
                    raw = f'[["{t}","{t}"],["1","2"]]'.encode()
                    want = [(float(t), float(t)), (1.0, 2.0)]
                    for parse in PARSERS:
                        assert parse(raw) == want, (parse, t)


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}",
        b"[",
        b'[["1"]]',
        b'[["1","2","3"]]',
        b'[["x","2"]]',
        b'[["1","2"]',
        b'[["1","2"],]',
        b'[["1,"2"]]',
        b'[["nan","1"]]',
        b'[["1","2"]] x',
        b'["1","2"]',
        b'[[null,"2"]]',
        b'[["66999\x009","1"]]',  # an embedded NUL must not end the number early
        b'[["1","2\x00"]]',
    ],
)
def test_malformed_levels_raise_value_error(parse, raw):
    with pytest.raises(ValueError):
        parse(raw)


@pytest.mark.parametrize("cls", BOOKS)
def test_apply_json_is_atomic(cls):
    book = cls("BTC-USDT")
    book.load_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)])
    before = (book.top_bids(10), book.top_asks(10))
    with pytest.raises(ValueError):
        book.apply_json(b'[["100","0"],["98","5"]]', b'[["101.5","1"],["oops","1"]]')
    assert (book.top_bids(10), book.top_asks(10)) == before
    book.apply_json(b'[["100","0"],["98","5"]]', b'[["101.5","1"]]')
    assert book.top_bids(10) == [[99.0, 2.0], [98.0, 5.0]]
    assert book.top_asks(10) == [[101.0, 1.0], [101.5, 1.0]]


@settings(max_examples=100, deadline=None)
@given(
    snap=st.lists(st.tuples(st.integers(1, 300), st.integers(0, 50)), max_size=150),
    deltas=st.lists(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 50)), max_size=40), max_size=20),
)
def test_compiled_and_python_books_agree_on_json_deltas(snap, deltas):
    books = [cls("X") for cls in BOOKS]
    for b in books:
        b.load_snapshot(
            [(p / 10, q / 7) for p, q in snap if p < 150], [(p / 10, q / 7) for p, q in snap if p >= 150]
        )
    for d in deltas:
        bids = json.dumps([[str(p / 10), str(q / 7)] for p, q in d if p < 150]).encode()
        asks = json.dumps([[str(p / 10), str(q / 7)] for p, q in d if p >= 150]).encode()
        for b in books:
            b.apply_json(bids, asks)
        assert len({(repr(b.top_bids(1000)), repr(b.top_asks(1000)), len(b)) for b in books}) == 1


_VALID = b'[["67000.10000000","0.00100000"],["66999.9","0"],[1.5e3, 2],["-0.5","1e-3"]]'
_ALPHABET = b'[]",.-+eE0123456789 \n\tnaif{}:x\x00\x01\xff'


@settings(max_examples=600, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 200), st.sampled_from(list(_ALPHABET))), max_size=6
    )
)
def test_mangled_level_arrays_are_refused_or_parsed_as_the_reference_does(edits):
    """Fuzz: the compiled parser never accepts what JSON + float() would read differently."""
    raw = mangled(_VALID, edits)
    try:
        got = book_mod.parse_levels(raw)
    except ValueError:
        return
    try:
        assert got == book_mod._parse_levels_py(raw)
    except ValueError:  # accepted only by the compiled parser: bare numbers JSON would not allow
        assert not any(c < 0x20 and c not in b" \t\n\r" for c in raw), raw


# -- load_json / load_json_plain: snapshots straight from the raw level arrays ---------------------

_SNAP_BIDS = b'[["67000.10000000","0.00100000"],["66999.9","0"],["66999.5","2.5"]]'
_SNAP_ASKS = b'[["67000.2","1"],["67001","0.25"]]'


@pytest.mark.parametrize("cls", BOOKS)
@pytest.mark.parametrize("method", ["load_json", "load_json_plain"])
def test_load_json_is_load_snapshot_of_the_parsed_levels(cls, method):
    ref = cls("X")
    ref.load_snapshot(book_mod._parse_levels_py(_SNAP_BIDS), book_mod._parse_levels_py(_SNAP_ASKS))
    book = cls("X")
    book.set_bid(1.0, 1.0)  # replaced, not merged
    getattr(book, method)(_SNAP_BIDS, _SNAP_ASKS)
    assert (book.top_bids(10), book.top_asks(10), len(book)) == (ref.top_bids(10), ref.top_asks(10), len(ref))
    assert book.top_bids(10) == [[67000.1, 0.001], [66999.5, 2.5]]  # a zero size is no level


@pytest.mark.parametrize("cls", BOOKS)
@pytest.mark.parametrize("method", ["load_json", "load_json_plain"])
@pytest.mark.parametrize(
    "bids",
    [
        b'[["1","2"],["nan","1"]]',
        b'[["-1","2"]]',
        b'[["0","2"]]',
        b'[["1","-2"]]',
        b'[["1","inf"]]',
        b'[["1"]]',
        b"{}",
    ],
)
def test_load_json_refuses_with_the_book_untouched(cls, method, bids):
    book = cls("X")
    book.load_snapshot([(1.0, 1.0)], [(2.0, 1.0)])
    with pytest.raises(ValueError):
        getattr(book, method)(bids, b'[["3","1"]]')
    assert (book.top_bids(10), book.top_asks(10)) == ([[1.0, 1.0]], [[2.0, 1.0]])


@pytest.mark.parametrize("cls", BOOKS)
def test_load_json_refuses_impossible_levels_with_the_check_levels_message(cls):
    book = cls("X")
    with pytest.raises(ValueError) as raised:
        book.load_json(b'[["1","2"]]', b'[["-3","1"]]')
    with pytest.raises(ValueError) as expected:
        book_mod.check_levels([(-3.0, 1.0)])
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize("cls", BOOKS)
@pytest.mark.parametrize(
    "text",
    [
        "1e2",
        "1E2",
        ".5",
        "5.",
        "+5",
        "00.5",
        "05",
        "-0",
        "-1.5",
        "inf",
        "NaN",
        "1_0",
        "12345678901234567890",
        "9007199254740993",
        "0." + "1" * 23,
    ],
)
def test_load_json_plain_refuses_all_but_plain_decimals(cls, text):
    """Quoted or bare: whatever a stricter decoder might read otherwise is refused (the caller falls back)."""
    for raw in (f'[["{text}","1"]]', f'[["1","{text}"]]', f"[[{text},1]]"):
        with pytest.raises(ValueError):
            cls("X").load_json_plain(raw.encode(), b"[]")


plain_decimal = st.one_of(
    st.from_regex(r"\A(0|[1-9][0-9]{0,9})(\.[0-9]{1,9})?\Z"),
    st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False).map(lambda d: format(d, "f")),
)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(plain_decimal, plain_decimal), max_size=30),
    bare=st.booleans(),
    compact=st.booleans(),
)
def test_load_json_plain_takes_exactly_what_msgspec_and_float_read(pairs, bare, compact):
    """It takes every plain decimal within the exact fast path (at most 19 digits, as an integer <= 2**53),
    as msgspec reads it, in both books; it refuses the rest."""
    import msgspec

    if bare:
        raw = ("[" + ",".join(f"[{p},{q}]" for p, q in pairs) + "]").encode()
    else:
        raw = json.dumps([[p, q] for p, q in pairs], separators=(",", ":") if compact else None).encode()
    decoded = msgspec.json.decode(raw, type=list[tuple[float, float]], strict=False)
    assert decoded == [(float(p), float(q)) for p, q in pairs]
    want = None
    digits = [t.replace(".", "") for pair in pairs for t in pair]
    if all(0 < p for p, _q in decoded) and all(len(d) <= 19 and int(d) <= 1 << 53 for d in digits):
        ref = PyL2Book("X")
        ref.load_snapshot(decoded, [])
        want = (ref.top_bids(100), len(ref))
    for cls in BOOKS:
        book = cls("X")
        try:
            book.load_json_plain(raw, b"[]")
        except ValueError:
            got = None
        else:
            got = (book.top_bids(100), len(book))
        assert got == want, (cls, raw)
