"""The paper venue's compiled action heap (``_paper.heap_push`` / ``heap_pop``) against heapq.

The Python side pushes and pops the same list with heapq, so the compiled functions must leave it
exactly as heapq would: the same items in the same places after every step, not only the same
order out. Entries are (due, seq, fn, args) tuples compared by their ints where they are plain
ints; anything else (a due time past int64, a float, a bool, a tie) as Python compares it.
"""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core.testing import expect_compiled

try:
    from latentspeed_mock_exchange import _paper
except ImportError:  # no compiler: the venue runs on heapq itself
    _paper = None


def test_the_compiled_heap_is_built():
    assert (_paper is not None) == expect_compiled()


dues = st.one_of(
    st.integers(0, 5),  # many equal due times: the sequence number decides
    st.integers(-(2**62), 2**62),
    st.sampled_from([2**63, 2**70, -(2**64), 1.5, True]),  # past int64, a float, a bool
)
entries = st.tuples(dues, st.integers(0, 3), st.none(), st.integers(0, 9))
ops = st.lists(st.one_of(st.tuples(st.just("push"), entries), st.just(("pop",))), max_size=120)


@pytest.mark.skipif(_paper is None, reason="the compiled paper venue was not built (no C compiler)")
@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_every_step_leaves_the_list_as_heapq_does(ops):
    ours: list = []
    ref: list = []
    for op in ops:
        if op[0] == "push":
            item = op[1]
            heapq.heappush(ref, item)
            _paper.heap_push(ours, item)
        elif ref:
            assert _paper.heap_pop(ours) is heapq.heappop(ref)
        else:
            with pytest.raises(IndexError):
                _paper.heap_pop(ours)
        assert len(ours) == len(ref) and all(a is b for a, b in zip(ours, ref, strict=True))


@pytest.mark.skipif(_paper is None, reason="the compiled paper venue was not built (no C compiler)")
def test_heapq_and_the_compiled_heap_take_turns_on_one_list():
    heap: list = []
    for i, due in enumerate([7, 3, 3, 9, 1, 3, 12, 0, 5]):
        (heapq.heappush if i % 2 else _paper.heap_push)(heap, (due, i, None, ()))
    out = [(heapq.heappop if i % 2 else _paper.heap_pop)(heap)[:2] for i in range(9)]
    assert out == sorted(out) and not heap


@pytest.mark.skipif(_paper is None, reason="the compiled paper venue was not built (no C compiler)")
def test_entries_python_cannot_order_raise_as_heapq_does():
    """Equal (due, seq) fall through to the tuples' own comparison: 0 < "x" is a TypeError."""
    ours, ref = [(1, 1, None, 0)], [(1, 1, None, 0)]
    with pytest.raises(TypeError) as theirs:
        heapq.heappush(ref, (1, 1, None, "x"))
    with pytest.raises(TypeError) as mine:
        _paper.heap_push(ours, (1, 1, None, "x"))
    assert str(mine.value) == str(theirs.value)
    assert ours == ref  # (appended before the comparison failed, as heapq leaves it)
    with pytest.raises(TypeError, match="heap_push"):
        _paper.heap_push((), (1, 1, None, 0))
    with pytest.raises(TypeError, match="heap_pop"):
        _paper.heap_pop(())
