"""Latency records (JSON lines, read by ``latentspeed analyze``) and percentile helpers.

Records are serialised with orjson into an in-memory list and written in one go at each
stats interval and at shutdown, so the hot path never touches the file.
"""

from __future__ import annotations

import random
from array import array

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
    """Int64 samples (ns); percentiles in microseconds; constant memory.

    The buffer for ``cap`` samples is allocated once, up front: the first ``cap`` samples are all
    kept, after which each new one replaces a random kept one with probability cap/n (reservoir
    sampling), so ``data`` stays a uniform sample of the whole session and its percentiles
    estimate the session's. Before, two arrays grew by 16 bytes per order for ever, and each
    ``realloc`` that moved them left a hole in the heap (most of the engine's RSS growth in a
    soak). ``len()`` counts every sample seen.
    """

    # (Slots: the compiled engine adds a sample at their offsets while the buffer has room.)
    __slots__ = ("_buf", "cap", "n", "_random")

    def __init__(self, cap: int = SAMPLES_CAP, seed: int | None = None) -> None:
        self._buf = array("q", bytes(8 * cap))
        self.cap = cap
        #: Samples seen.
        self.n = 0
        self._random = random.Random(seed).random

    def add(self, ns: int) -> None:
        n = self.n
        if n < self.cap:
            self._buf[n] = ns
        else:
            j = int(self._random() * (n + 1))
            if j < self.cap:
                self._buf[j] = ns
        self.n = n + 1

    @property
    def data(self) -> array:
        """The kept samples (a copy): all of them up to ``cap``, then the uniform sample."""
        return self._buf[: min(self.n, self.cap)]

    def __len__(self) -> int:
        return self.n

    def percentiles_us(self, *qs: float) -> list[float | None]:
        k = min(self.n, self.cap)
        if not k:
            return [None] * len(qs)
        arr = np.frombuffer(self._buf, dtype=np.int64, count=k)  # a view: percentile copies it
        return [round(float(v) / 1000.0, 2) for v in np.percentile(arr, qs)]
