"""``types.new_trade`` is ``Trade(...)``: compiled, it builds the dataclass at its slots (feeds make one per
trade print); any other call, and the pure-Python build, is ``Trade`` itself."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from latentspeed_core.types import Trade, new_trade

values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))


@given(args=st.tuples(*[values] * 8))
def test_new_trade_is_the_dataclass_with_the_same_fields(args):
    made, want = new_trade(*args), Trade(*args)
    assert type(made) is Trade and made == want
    assert [getattr(made, f) for f in Trade.__slots__] == list(args)  # the very objects, in order


def test_keywords_and_wrong_arities_are_trades_own():
    assert new_trade("X", "S", 1, 2, 1.0, 2.0, side="buy", trade_id="7") == Trade(
        "X", "S", 1, 2, 1.0, 2.0, "buy", "7"
    )
    for args in ((), ("X",) * 7, ("X",) * 9):
        with pytest.raises(TypeError) as got:
            new_trade(*args)
        with pytest.raises(TypeError) as want:
            Trade(*args)
        assert str(got.value) == str(want.value)
