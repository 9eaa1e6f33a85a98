"""``scan_book_frame``'s arguments: the key sets, event types and quoted decimals a feed asks for.

The venue plugins test the reader against msgspec on their recorded frames; these pin what the core
promises any feed: a decimal is exactly ``float(text)``, a key set or event type is read per call
even when a feed alternates several, and bad arguments are clear errors rather than wrong answers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core.book import scan_book_frame as scan

pytestmark = pytest.mark.skipif(scan is None, reason="pure-Python build: no one-pass reader")

TOP = ("stream",)
KEYS = ("e", "s", "t", "p", "q", "m", "a")
TAGS = ("e", ("trade", "aggTrade"))
DECIMALS = ("p", "q")


def frame(p: str = "61837.63000000", q: str = "0.02", e: str = "trade", more: str = "") -> bytes:
    return (
        f'{{"stream":"x@trade","data":{{"e":"{e}","s":"BTCUSDT","t":37,"p":"{p}","q":"{q}","m":true{more}}}}}'
    ).encode()


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?\Z"), st.booleans())
def test_a_quoted_decimal_is_exactly_float_of_its_text(text, m):
    """Exactly ``float(text)``, or (more digits than one IEEE division rounds exactly) the general decoder's."""
    f = frame(p=text).replace(b'"m":true', b'"m":true' if m else b'"m":false')
    got = scan(f, TOP, "data", KEYS, TAGS, DECIMALS)
    if got is None:
        assert len(text.replace(".", "").lstrip("0")) > 15
    else:
        assert got == ("x@trade", "trade", "BTCUSDT", 37, float(text), 0.02, m, None, None)
        assert type(got[6]) is bool


@pytest.mark.parametrize(
    "p", ["1e5", "-1", "+1", "01", "1.", ".5", "nan", "inf", " 1", "1 ", "", "1" * 30 + ".5"]
)
def test_anything_but_a_plain_decimal_is_left_to_the_general_decoder(p):
    assert scan(frame(p=p), TOP, "data", KEYS, TAGS, DECIMALS) is None
    assert (
        scan(frame().replace(b'"p":"61837.63000000"', b'"p":61837.63'), TOP, "data", KEYS, TAGS, DECIMALS)
        is None
    )


def test_event_types_and_their_absence():
    assert scan(frame(e="aggTrade"), TOP, "data", KEYS, TAGS, DECIMALS)[1] == "aggTrade"
    assert scan(frame(e="bookTicker"), TOP, "data", KEYS, TAGS, DECIMALS) is None
    assert scan(frame().replace(b'"e":"trade",', b""), TOP, "data", KEYS, TAGS, DECIMALS) is None
    # no tag asked for: no event type needed, any accepted
    assert scan(frame(e="bookTicker"), TOP, "data", KEYS, None, DECIMALS)[1] == "bookTicker"


def test_b_and_a_are_levels_only_as_arrays():
    got = scan(frame(more=',"a":12'), TOP, "data", KEYS, TAGS, DECIMALS)
    assert got[-2:] == (12, None)
    levels = scan(frame(more=',"b":[["1.5","2"]],"a":[["2.5","3"]]'), TOP, "data", KEYS, TAGS, DECIMALS)[-1]
    assert type(levels) is bytes
    assert scan(frame(more=',"a":12,"a":[["2.5","3"]]'), TOP, "data", KEYS, TAGS, DECIMALS) is None  # twice


def test_a_feed_may_alternate_more_key_sets_than_are_kept():
    """Each call reads with its own arguments, whatever the calls before it asked."""
    f = frame()
    sets = [(KEYS[:n], TAGS if n % 2 else None, DECIMALS if n > 4 else None) for n in range(1, 8)]
    expect = [scan(f, TOP, "data", k, t, d) for k, t, d in sets]
    for _ in range(3):
        for (k, t, d), want in zip(sets, expect, strict=True):
            # fresh tuples with equal contents, too
            assert scan(f, TOP, "data", k, t, d) == want
            assert scan(f, tuple(TOP), "data", tuple(list(k)), t and (t[0], tuple(t[1])), d) == want
    assert expect[0] == ("x@trade", "trade", None)
    assert expect[3][4] == "61837.63000000"  # p not a decimal key: its text
    assert expect[4][4] == 61837.63


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((TOP, "data", KEYS, ("e",), None), TypeError),
        ((TOP, "data", KEYS, ("e", ("a", "b", "c", "d", "e")), None), TypeError),
        ((TOP, "data", KEYS, ("e", (1,)), None), TypeError),
        ((TOP, "data", KEYS, TAGS, ("zz",)), ValueError),
        ((TOP, "data", tuple("abcdefghijklmnopq"), None, None), TypeError),
        ((TOP, "data", KEYS, TAGS, DECIMALS, None), TypeError),
    ],
)
def test_bad_arguments_are_clear_errors(args, error):
    with pytest.raises(error):
        scan(frame(), *args)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 10**18 - 1))
def test_strings_and_integers_of_any_length(raw, n):
    """A string is taken as it is only when plain ASCII with no escape or control character (the rest
    goes to the general decoder), wherever the first such byte sits in the eight-byte steps."""
    text = raw.replace(b'"', b"").decode("latin-1")
    f = (
        frame()
        .replace(b'"s":"BTCUSDT"', b'"s":"' + text.encode("latin-1") + b'"')
        .replace(b'"t":37', b'"t":%d' % n)
    )
    got = scan(f, TOP, "data", KEYS, TAGS, DECIMALS)
    plain = all(0x20 <= ord(c) < 0x80 and c != "\\" for c in text)
    if plain:
        assert got[2:4] == (text, n)
    else:
        assert got is None


def test_a_repeated_name_is_one_object_and_a_different_one_is_never_mistaken_for_it():
    """Names a venue repeats come back as the same str (their hash computed once: the routes' look-ups
    by them are identity matches); names sharing length, first and last byte stay distinct."""
    first = scan(frame(), TOP, "data", KEYS, TAGS, DECIMALS)
    again = scan(frame(), TOP, "data", KEYS, TAGS, DECIMALS)
    assert first[2] == "BTCUSDT" and again[2] is first[2] and again[0] is first[0]
    for name in ("BXCUSDT", "BTCUSDT", "BTXUSDT", "BTCUSDT", "B" + "x" * 70 + "T", "B" + "x" * 70 + "T"):
        got = scan(frame().replace(b"BTCUSDT", name.encode()), TOP, "data", KEYS, TAGS, DECIMALS)
        assert got[2] == name
