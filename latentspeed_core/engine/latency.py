"""Latency records (JSON lines, read by ``latentspeed analyze``) and percentile helpers.

Records are serialised with orjson into an in-memory list and written in one go at each
stats interval and at shutdown, so the hot path never touches the file.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable

import numpy as np
import orjson

from .orders import STATUS_NAMES, OrderState

_SIDE = ("buy", "sell")


def order_record(o: OrderState) -> dict:
    """The contract's ``{"type":"order",...}`` record (contracts.md), plus strategy and trigger."""
    return {
        "type": "order",
        "cl_ord_id": o.cl_ord_id,
        "symbol": o.symbol,
        "side": _SIDE[o.side],
        "md_receipt_ns": o.md_receipt_ns,
        "decision_ns": o.decision_ns,
        "sent_ns": o.sent_ns,
        "ack_ns": o.ack_ns,
        "first_fill_ns": o.first_fill_ns,
        "final_ns": o.final_ns,
        "status": STATUS_NAMES[o.status],
        "filled_qty": o.filled_qty,
        "strategy": o.strategy,
        "trigger": o.trigger,
    }


class LatencyLog:
    """Buffers records; ``flush`` appends them to the file (``None``: kept in memory only)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._pending: list[bytes] = []
        self._fh = open(path, "ab") if path else None  # noqa: SIM115 - closed in close()

    def order(self, o: OrderState) -> None:
        if o.recorded:
            return
        o.recorded = True
        if self._fh is not None:
            self._pending.append(orjson.dumps(order_record(o)))

    def record(self, rec: dict) -> None:
        if self._fh is not None:
            self._pending.append(orjson.dumps(rec))

    def flush(self) -> None:
        if self._fh is None or not self._pending:
            return
        self._fh.write(b"\n".join(self._pending) + b"\n")
        self._fh.flush()
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


#: Samples kept per series (512 KiB of int64): every sample up to here, a uniform sample beyond.
SAMPLES_CAP = 65_536


class Samples:
    """Int64 samples (ns); percentiles in microseconds; memory bounded by ``cap``.

    The first ``cap`` samples are all kept (``data``); after that each new sample replaces a
    random kept one with probability cap/n (reservoir sampling), so ``data`` stays a uniform
    sample of the whole session and its percentiles estimate the session's, in constant memory
    (before this, two arrays grew by 16 bytes per order for ever). ``len()`` counts every sample.
    """

    def __init__(self, cap: int = SAMPLES_CAP, seed: int | None = None) -> None:
        self.data = array("q")
        self.cap = cap
        #: Samples seen beyond the first ``cap``.
        self._extra = 0
        self._random = random.Random(seed).random
        #: ``add(ns)``: appends until ``cap`` samples are kept, then samples (swapped once, so the
        #: common case costs one length check more than a bare append).
        self.add: Callable[[int], None] = self._append

    def _append(self, ns: int) -> None:
        data = self.data
        if len(data) < self.cap:
            data.append(ns)
        else:  # a caller may hold the old bound method (a batch of orders): never past the cap
            self.add = self._replace
            self._replace(ns)

    def _replace(self, ns: int) -> None:
        self._extra += 1
        j = int(self._random() * (self.cap + self._extra))
        if j < self.cap:
            self.data[j] = ns

    def __len__(self) -> int:
        return len(self.data) + self._extra

    def percentiles_us(self, *qs: float) -> list[float | None]:
        if not self.data:
            return [None] * len(qs)
        arr = np.array(self.data, dtype=np.int64)  # a copy: the array may grow later
        return [round(float(v) / 1000.0, 2) for v in np.percentile(arr, qs)]
