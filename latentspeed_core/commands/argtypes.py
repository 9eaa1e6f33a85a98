"""argparse types shared by the commands: a bad value is argparse's one error line, exit 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in(low: int, high: int | None = None, hint: str = "") -> Callable[[str], int]:
    """An integer in ``low..high`` (no upper bound when ``high`` is None); ``hint`` says why."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if n < low or (high is not None and n > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{n} is out of range ({bounds}{'; ' + hint if hint else ''})")
        return n

    return parse


def float_above(low: float) -> Callable[[str], float]:
    """A number strictly above ``low`` (a duration: ``--duration 0`` would end before it began)."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not x > low:  # (NaN too)
            raise argparse.ArgumentTypeError(f"{text} is not above {low:g}")
        return x

    return parse
