"""L2 order book with absolute-size updates, kept sorted incrementally near the top.

Each side is a dict ``price -> qty`` holding every level, plus a sorted list of the keys
of the best levels only: every key up to an *edge*. Bids are keyed by the negated price
so that index 0 is the best level on both sides; a top-N read is a slice, never a sort.

Why a window and not all keys: venues send updates all through a deep book (Binance's
diff depth touches ~1,000 levels a side), and keeping every key sorted costs a bisect
and a list memmove per new or removed level. Levels beyond the edge only touch the dict
(one float comparison decides, before any hash lookup). When the window grows past
``2 * window`` it is cut back to ``window`` keys; when deletions shrink it below
``window // 2`` it is refilled from the dict with one C ``sorted`` (rare; ~10 µs on a
1,000-level side) to ``1.5 * window`` keys, so the next refill needs ``window`` net
deletions, not half that. A read deeper than the window sorts the dict (correct, slow).

``L2Book`` is the compiled implementation of exactly this design (``_book.c``: a C hash map
and window of plain doubles, and ``apply_json`` parsing a venue's level arrays straight from
the frame) when the extension is built, else ``PyL2Book``. ``PyL2Book`` is the reference: the
property tests hold both to the same naive model. ``LATENTSPEED_PURE_PYTHON=1`` forces it.

Every way into a book refuses a level no venue can send (:func:`check_levels`): a price that is not
finite and > 0, or a size that is not finite and >= 0. Such a level is a malformed frame, not data:
an inf or negative price would sort to the top of its side and be published as the best level.
The call raises ``ValueError`` and the book does not change; the feed counts it and resyncs.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from types import FunctionType, GetSetDescriptorType, MethodDescriptorType, WrapperDescriptorType

import orjson

_INF = float("inf")
_NINF = -_INF


def _bad_level(price: float, qty: float) -> ValueError:
    """The error for an impossible level; the same text as the compiled book's."""
    return ValueError(
        f"impossible level [{float(price)!r}, {float(qty)!r}]: price must be finite and > 0, size finite and >= 0"
    )


def check_levels(levels: Iterable[Sequence[float]]) -> Sequence[Sequence[float]]:
    """``levels`` (as a list or tuple) if every ``(price, qty)`` can be in a book, else ``ValueError``.

    Why: one impossible level (NaN, inf, a price <= 0, a size < 0) makes the whole frame malformed,
    so callers check every level of a message before any of it changes a book. Two comparisons a
    level; NaN fails both.
    """
    if type(levels) is not list and type(levels) is not tuple:
        levels = list(levels)
    for p, q in levels:
        if not (0.0 < p < _INF and 0.0 <= q < _INF):
            raise _bad_level(p, q)
    return levels


class CrossedBookError(ValueError):
    pass


class PyL2Book:
    """Pure-Python order book; the reference for, and fallback of, the compiled one."""

    __slots__ = ("symbol", "_bids", "_asks", "_bid_keys", "_ask_keys", "_bid_edge", "_ask_edge")

    #: Best levels kept sorted per side (reads of up to this many levels are slices).
    window: int = 64

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_keys: list[float] = []  # negated prices, ascending, every bid key <= _bid_edge
        self._ask_keys: list[float] = []  # prices, ascending, every ask key <= _ask_edge
        self._bid_edge = _INF  # inf: every level is in the keys list
        self._ask_edge = _INF

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._bid_edge = self._ask_edge = _INF

    def load_snapshot(self, bids, asks) -> None:
        """Replace the whole book from iterables of ``(price, qty)``; zero sizes are ignored.

        ``ValueError`` with the book untouched if a level of either side is impossible.
        """
        self._load(check_levels(bids), check_levels(asks))

    def load_json(self, bids, asks) -> None:
        """:meth:`load_snapshot` from raw JSON level arrays ``[["price", "qty"], ...]`` (bytes-like),
        parsed as :meth:`apply_json` parses them; ``ValueError`` with the book untouched if malformed."""
        self._load(_parse_levels_py(bids, True), _parse_levels_py(asks, True))

    def load_json_plain(self, bids, asks) -> None:
        """:meth:`load_json` taking plain decimals only (``(0|[1-9][0-9]*)(\\.[0-9]+)?``, quoted or bare, at
        most 19 digits forming an integer <= 2**53, at most 22 decimals): ``ValueError`` for any other
        number, so a caller whose reference decoder reads a narrower syntax than ``float()`` can fall
        back to it, and the numbers taken are exactly ``float(text)`` under any correct decoder."""
        b = _parse_levels_py(bids, True)
        a = _parse_levels_py(asks, True)
        _check_plain(bids)
        _check_plain(asks)
        self._load(b, a)

    def load_snapshot_json(self, body, id_key: str, bids_key: str, asks_key: str) -> int | None:
        """A REST depth snapshot read and loaded in one pass by the compiled book; here, None: "not taken",
        the caller decodes the body and calls :meth:`load_json_plain` (the same book either way)."""
        return None

    def _load(self, bids, asks) -> None:
        self._bids = {p: q for p, q in bids if q > 0}
        self._asks = {p: q for p, q in asks if q > 0}
        self._refill_bids()
        self._refill_asks()

    # -- window maintenance (rare) --------------------------------------------------
    def _refill_bids(self) -> None:
        w = self.window
        if len(self._bids) > 2 * w:
            # sorted() beats heapq.nsmallest (2-4x): C throughout, and the dict is mostly in order
            self._bid_keys = [-p for p in sorted(self._bids, reverse=True)[: w + w // 2]]
            self._bid_edge = self._bid_keys[-1]
        else:
            self._bid_keys = sorted(-p for p in self._bids)
            self._bid_edge = _INF

    def _refill_asks(self) -> None:
        w = self.window
        if len(self._asks) > 2 * w:
            self._ask_keys = sorted(self._asks)[: w + w // 2]
            self._ask_edge = self._ask_keys[-1]
        else:
            self._ask_keys = sorted(self._asks)
            self._ask_edge = _INF

    def _trim_bids(self) -> None:
        keys = self._bid_keys
        w = self.window
        self._bid_edge = keys[w - 1]
        del keys[w:]

    def _trim_asks(self) -> None:
        keys = self._ask_keys
        w = self.window
        self._ask_edge = keys[w - 1]
        del keys[w:]

    # -- updates ------------------------------------------------------------------------
    def set_bid(self, price: float, qty: float) -> None:
        """Set the absolute size at ``price``; ``qty`` 0 deletes the level (``ValueError`` if impossible)."""
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            raise _bad_level(price, qty)
        levels = self._bids
        key = -price
        if qty > 0:
            if price not in levels and key <= self._bid_edge:
                keys = self._bid_keys
                keys.insert(bisect_left(keys, key), key)
                if len(keys) > 2 * self.window:
                    self._trim_bids()
            levels[price] = qty
        elif levels.pop(price, None) is not None and key <= self._bid_edge:
            keys = self._bid_keys
            del keys[bisect_left(keys, key)]
            if len(keys) < (self.window + 1) // 2 and self._bid_edge != _INF:
                self._refill_bids()

    def set_ask(self, price: float, qty: float) -> None:
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            raise _bad_level(price, qty)
        levels = self._asks
        if qty > 0:
            if price not in levels and price <= self._ask_edge:
                keys = self._ask_keys
                keys.insert(bisect_left(keys, price), price)
                if len(keys) > 2 * self.window:
                    self._trim_asks()
            levels[price] = qty
        elif levels.pop(price, None) is not None and price <= self._ask_edge:
            keys = self._ask_keys
            del keys[bisect_left(keys, price)]
            if len(keys) < (self.window + 1) // 2 and self._ask_edge != _INF:
                self._refill_asks()

    def update_bids(self, levels) -> None:
        """Apply ``(price, qty)`` pairs of absolute sizes (0 deletes); one call per venue message.

        ``ValueError`` with the book untouched if any level is impossible.
        """
        self._update_bids(check_levels(levels))

    def update_asks(self, levels) -> None:
        self._update_asks(check_levels(levels))

    def _update_bids(self, levels) -> None:
        """:meth:`update_bids` of checked levels.

        Most levels of a deep venue update lie beyond the edge: for them the only work is the
        edge comparison and the dict write/pop (no hash lookup before it, no negation).
        """
        book = self._bids
        keys = self._bid_keys
        cut = -self._bid_edge  # a bid is inside the window when price >= cut
        hi = 2 * self.window
        lo = (self.window + 1) // 2
        for price, qty in levels:
            if price >= cut:  # inside the window (NaN never is)
                if qty > 0:
                    if price not in book:
                        insort(keys, -price)
                        if len(keys) > hi:
                            self._trim_bids()
                            cut = -self._bid_edge
                    book[price] = qty
                elif book.pop(price, None) is not None:
                    del keys[bisect_left(keys, -price)]
                    if len(keys) < lo and cut != _NINF:
                        self._refill_bids()
                        keys = self._bid_keys
                        cut = -self._bid_edge
            elif qty > 0:  # beyond the edge: the dict only
                book[price] = qty
            else:
                book.pop(price, None)

    def _update_asks(self, levels) -> None:
        book = self._asks
        keys = self._ask_keys
        edge = self._ask_edge
        hi = 2 * self.window
        lo = (self.window + 1) // 2
        for price, qty in levels:
            if price <= edge:  # inside the window (NaN never is)
                if qty > 0:
                    if price not in book:
                        insort(keys, price)
                        if len(keys) > hi:
                            self._trim_asks()
                            edge = self._ask_edge
                    book[price] = qty
                elif book.pop(price, None) is not None:
                    del keys[bisect_left(keys, price)]
                    if len(keys) < lo and edge != _INF:
                        self._refill_asks()
                        keys = self._ask_keys
                        edge = self._ask_edge
            elif qty > 0:  # beyond the edge: the dict only
                book[price] = qty
            else:
                book.pop(price, None)

    def apply_json(self, bids, asks) -> None:
        """Apply raw JSON level arrays ``[["price", "qty"], ...]`` of both sides, atomically."""
        b = _parse_levels_py(bids, True)
        a = _parse_levels_py(asks, True)
        self._update_bids(b)
        self._update_asks(a)

    def apply_levels(self, bids, asks) -> None:
        """Apply ``(price, qty)`` pairs of both sides of one message (0 deletes), atomically: both
        sides are checked before either changes, so an impossible ask cannot leave the bids applied."""
        b = check_levels(bids)
        a = check_levels(asks)
        self._update_bids(b)
        self._update_asks(a)

    def set(self, is_bid: bool, price: float, qty: float) -> None:
        if is_bid:
            self.set_bid(price, qty)
        else:
            self.set_ask(price, qty)

    # -- reads ----------------------------------------------------------------------------
    def bid_qty(self, price: float) -> float:
        return self._bids.get(price, 0.0)

    def ask_qty(self, price: float) -> float:
        return self._asks.get(price, 0.0)

    def best_bid(self) -> tuple[float, float] | None:
        if not self._bid_keys:
            return None
        p = -self._bid_keys[0]
        return p, self._bids[p]

    def best_ask(self) -> tuple[float, float] | None:
        if not self._ask_keys:
            return None
        p = self._ask_keys[0]
        return p, self._asks[p]

    def top_bids(self, n: int) -> list[list[float]]:
        """Best ``n`` bids, best first, as ``[[price, qty], ...]``."""
        levels = self._bids
        keys = self._bid_keys
        if n > len(keys) and self._bid_edge != _INF:  # deeper than the window: sort (rare, correct)
            keys = sorted(-p for p in levels)
        return [[-k, levels[-k]] for k in keys[:n]]

    def top_asks(self, n: int) -> list[list[float]]:
        levels = self._asks
        keys = self._ask_keys
        if n > len(keys) and self._ask_edge != _INF:
            keys = sorted(levels)
        return [[k, levels[k]] for k in keys[:n]]

    def bid_prices(self) -> list[float]:
        """All bid prices, best first (a copy)."""
        if self._bid_edge == _INF:
            return [-k for k in self._bid_keys]
        return sorted(self._bids, reverse=True)

    def ask_prices(self) -> list[float]:
        if self._ask_edge == _INF:
            return list(self._ask_keys)
        return sorted(self._asks)

    def is_crossed(self) -> bool:
        """True when best bid >= best ask (a locked book counts as crossed)."""
        return bool(self._bid_keys and self._ask_keys and -self._bid_keys[0] >= self._ask_keys[0])

    @property
    def bid_levels(self) -> int:
        return len(self._bids)

    @property
    def ask_levels(self) -> int:
        return len(self._asks)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __repr__(self) -> str:
        return f"L2Book({self.symbol!r}, bid={self.best_bid()}, ask={self.best_ask()}, levels={len(self)})"


def _parse_levels_py(raw, strict: bool = False) -> list[tuple[float, float]]:
    """Raw JSON ``[["price", "qty"], ...]`` (bytes-like) → float pairs; ``ValueError`` if malformed.

    As ``parse_levels``, the number parser alone (exactly ``float(text)``; only a NaN price is
    refused): the book's intake refuses impossible levels, and :func:`check_levels` does for any
    other caller. ``strict`` refuses them here, level by level in order, as the compiled
    ``apply_json`` does (so both report the same first bad level).
    """
    try:
        levels = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed levels: {exc}") from None
    if not isinstance(levels, list):
        raise ValueError("levels must be a JSON array of [price, qty] pairs")
    out = []
    for lv in levels:
        if not (isinstance(lv, list) and len(lv) == 2):
            raise ValueError("a level must be a [price, qty] array")
        try:
            p, q = float(lv[0]), float(lv[1])
        except (TypeError, ValueError):
            raise ValueError(f"malformed number in levels: {lv!r}") from None
        if not (0.0 < p < _INF and 0.0 <= q < _INF) and (strict or p != p):
            raise _bad_level(p, q)
        out.append((p, q))
    return out


_TOKEN = re.compile(rb'"[^"]*"|[^\s\[\],"]+')
_PLAIN = re.compile(rb'"?(0|[1-9][0-9]*)(?:\.([0-9]+))?"?')


def _check_plain(raw) -> None:
    """``ValueError`` unless every number of ``raw`` (level arrays that parsed) is a plain decimal
    (:meth:`PyL2Book.load_json_plain`)."""
    for tok in _TOKEN.findall(bytes(raw)):
        m = _PLAIN.fullmatch(tok)
        if m is None or (tok[0] == 34) != (tok[-1] == 34):
            raise ValueError("not a plain decimal number in levels")
        whole, frac = m.group(1), m.group(2) or b""
        if len(whole) + len(frac) > 19 or len(frac) > 22 or int(whole + frac) > 1 << 53:
            raise ValueError("not a plain decimal number in levels")


try:
    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        raise ImportError("LATENTSPEED_PURE_PYTHON is set")
    from ._book import CL2Book, parse_levels, scan_book_frame
except ImportError:  # no compiler at install time: the reference implementation, same results
    CL2Book = None
    parse_levels = _parse_levels_py
    #: The compiled one-pass reader of a venue's book frame (``_book.c``), whose levels only the compiled
    #: book takes (``apply_parsed``/``load_parsed``); None here: feeds then decode as they always did.
    scan_book_frame = None
    L2Book = PyL2Book
else:

    class L2Book(CL2Book):  # type: ignore[no-redef]
        """The compiled book (``_book.c``); same API and results as :class:`PyL2Book`."""

        __slots__ = ()
        #: Best levels kept sorted per side, read when a book is created.
        window: int = 64
        __repr__ = PyL2Book.__repr__


class SnapshotBook(L2Book):
    """An :class:`L2Book` for venues that send whole top-N snapshots (the mock exchange).

    :meth:`load_sorted` keeps the decoded level lists as they are (best first, sizes > 0,
    one level per price: the decoder guarantees it), so a snapshot costs no dict building
    and no sort, and ``top_bids``/``top_asks`` are slices of them. Any other method first
    loads the snapshot into the ordinary dict representation, so the class behaves as an
    ``L2Book`` everywhere.
    """

    __slots__ = ("_snap_bids", "_snap_asks", "_spare_bids", "_spare_asks")

    def __init__(self, symbol: str = "") -> None:
        super().__init__(symbol)
        self._snap_bids: list | None = None
        self._snap_asks: list | None = None
        #: The lists of the snapshot before, kept by a compiled decoder (the mock feed's route) to
        #: refill in place the level pairs that nothing references any more; None elsewhere.
        self._spare_bids: list | None = None
        self._spare_asks: list | None = None

    def load_sorted(self, bids: list, asks: list) -> None:
        """Replace the book with ``[price, qty]`` lists, best first, sizes > 0, unique prices."""
        self._snap_bids = bids
        self._snap_asks = asks

    def _sync(self) -> None:
        if self._snap_bids is not None:
            bids, asks = self._snap_bids, self._snap_asks
            self._snap_bids = self._snap_asks = None
            L2Book.load_snapshot(self, bids, asks)

    def top_bids(self, n: int) -> list[list[float]]:
        b = self._snap_bids
        return b[:n] if b is not None else L2Book.top_bids(self, n)

    def top_asks(self, n: int) -> list[list[float]]:
        a = self._snap_asks
        return a[:n] if a is not None else L2Book.top_asks(self, n)


def _synced(base):
    def method(self, *args, **kw):
        self._sync()
        return base(self, *args, **kw)

    method.__name__ = base.__name__
    method.__doc__ = base.__doc__
    return method


# Every other public method and property of L2Book (whatever book.py grows, Python or C) loads the
# snapshot first.
_METHODS = (FunctionType, MethodDescriptorType, WrapperDescriptorType)
for _cls in reversed(L2Book.__mro__[:-1]):
    for _name, _attr in list(vars(_cls).items()):
        if _name in vars(SnapshotBook) or (_name.startswith("_") and _name not in ("__len__", "__repr__")):
            continue
        if isinstance(_attr, property):
            setattr(SnapshotBook, _name, property(_synced(_attr.fget), doc=_attr.__doc__))
        elif isinstance(_attr, GetSetDescriptorType) and _name != "symbol":
            setattr(SnapshotBook, _name, property(_synced(_attr.__get__), doc=_attr.__doc__))
        elif isinstance(_attr, _METHODS):  # methods (not static/class methods, not constants)
            setattr(SnapshotBook, _name, _synced(_attr))
