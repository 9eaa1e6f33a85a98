"""``latentspeed tap``: watch what a marketstream publishes, with no code to write.

On a terminal: a live table per topic (best bid/ask, spread in bps, imbalance, OFI, last
trade). Otherwise one readable line per message; ``--json``: the raw JSON object of every
message, one per line, exactly as published.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

from ..components import Command
from .argtypes import int_in

#: Without a terminal, how often (seconds) to say that nothing has arrived yet.
NOTICE_EVERY_S = 3.0


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="marketstream host (default: %(default)s)")
    p.add_argument(
        "--port", type=int_in(1, 65534, "books are on PORT+1"), default=5556, help="trades port; books on PORT+1 (default: %(default)s)"
    )
    p.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="topic prefix to subscribe to, e.g. MOCK-preprocessed_book (repeatable; default: all)",
    )
    p.add_argument("--count", type=int_in(1), default=None, metavar="N", help="exit after N messages")
    p.add_argument("--json", action="store_true", help="print raw JSON lines instead of the live view")


def book_line(topic: str, m: dict) -> str:
    (b, qb), (a, qa) = m["bids"][0], m["asks"][0]
    spread_bps = m.get("relative_spread", (a - b) / ((a + b) / 2)) * 1e4
    return (
        f"BOOK  {m['exchange']} {m['symbol']} seq={m['seq']} bid={b}x{qb} ask={a}x{qa}"
        f" spread={spread_bps:.2f}bps imb={m.get('imbalance_lvl1', 0.0):+.3f} ofi={m.get('ofi_rolling', 0.0):+.4g}"
    )


def trade_line(topic: str, m: dict) -> str:
    return (
        f"TRADE {m['exchange']} {m['symbol']} seq={m['seq']} {m['side']} {m['amount']}@{m['price']}"
        f" vol={m.get('volatility', 0.0):.3g}"
    )


def where(args: argparse.Namespace) -> str:
    """What tap listens to, for the messages that say it is still waiting."""
    topics = ", ".join(args.topic) if args.topic else "(all)"
    return f"tcp://{args.host}:{args.port} (trades) and :{args.port + 1} (books), topics {topics}"


def waiting_text(args: argparse.Namespace, seconds: float) -> str:
    return f"no messages yet ({seconds:.0f} s) from {where(args)}: is a marketstream publishing there?"


class _Tap:
    def __init__(self, args: argparse.Namespace, mode: str) -> None:
        self.args = args
        self.mode = mode
        self.count = 0
        self.done = asyncio.Event()
        #: Set by the first message: ends the "no messages yet" status.
        self.got = asyncio.Event()
        self.started = time.monotonic()
        self.books: dict[str, dict] = {}
        self.trades: dict[str, dict] = {}
        self.out = sys.stdout

    def _tick(self) -> None:
        self.count += 1
        self.got.set()
        if self.args.count is not None and self.count >= self.args.count:
            self.done.set()

    def on_book(self, topic: str, m: dict) -> None:
        if self.done.is_set():
            return
        if self.mode == "json":
            self.out.write(_dumps(m) + "\n")
        elif self.mode == "lines":
            self.out.write(book_line(topic, m) + "\n")
        else:
            self.books[f"{m['exchange']} {m['symbol']}"] = m
        self._tick()

    def on_trade(self, topic: str, m: dict) -> None:
        if self.done.is_set():
            return
        if self.mode == "json":
            self.out.write(_dumps(m) + "\n")
        elif self.mode == "lines":
            self.out.write(trade_line(topic, m) + "\n")
        else:
            self.trades[f"{m['exchange']} {m['symbol']}"] = m
        self._tick()
        if self.mode != "live":
            self.out.flush()

    def table(self):
        from rich.markup import escape
        from rich.table import Table

        t = Table(
            title=escape(
                f"latentspeed tap  tcp://{self.args.host}:{self.args.port}/{self.args.port + 1}  ({self.count} msgs)"
            )
        )
        if not self.count:
            t.caption = escape(waiting_text(self.args, time.monotonic() - self.started))
        for col in ("market", "seq", "bid", "ask", "spread bps", "imbalance", "OFI", "vol mid", "last trade"):
            t.add_column(col, justify="right" if col != "market" else "left")
        for key in sorted(set(self.books) | set(self.trades)):
            m = self.books.get(key)
            tr = self.trades.get(key)
            last = escape(f"{tr['side']} {tr['amount']:.4g}@{tr['price']:.10g}") if tr else "-"
            if m:
                (b, qb), (a, qa) = m["bids"][0], m["asks"][0]
                t.add_row(
                    escape(key),  # names come from the network: never markup
                    str(m["seq"]),
                    f"{b:.10g} x {qb:.4g}",
                    f"{a:.10g} x {qa:.4g}",
                    f"{m.get('relative_spread', 0.0) * 1e4:.2f}",
                    f"{m.get('imbalance_lvl1', 0.0):+.3f}",
                    f"{m.get('ofi_rolling', 0.0):+.4g}",
                    f"{m.get('volatility_mid', 0.0):.3g}",
                    last,
                )
            else:
                t.add_row(escape(key), "-", "-", "-", "-", "-", "-", "-", last)
        return t


async def report_waiting(tap: _Tap, console=None, every: float = NOTICE_EVERY_S) -> None:
    """Until the first message: a live status on a terminal (``console``), else a line every few seconds.

    A tap with no publisher would otherwise wait in silence. The live table (stdout on a
    terminal) says it in its caption instead, so nothing is drawn over it.
    """
    args = tap.args
    if console is not None:
        from rich.markup import escape

        with console.status(escape(waiting_text(args, 0))) as status:
            while not tap.got.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tap.got.wait(), 0.5)
                status.update(escape(waiting_text(args, time.monotonic() - tap.started)))
        return
    while not tap.got.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tap.got.wait(), every)
        if not tap.got.is_set():
            print(f"tap: {waiting_text(args, time.monotonic() - tap.started)}", file=sys.stderr, flush=True)


def _dumps(m: dict) -> str:
    import orjson

    return orjson.dumps(m).decode()


async def _main(args: argparse.Namespace, mode: str) -> int:
    from ..marketstream.subscriber import ZmqSubscriber

    tap = _Tap(args, mode)
    sub = ZmqSubscriber(args.host, args.port, args.topic or (), on_book=tap.on_book, on_trade=tap.on_trade)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, tap.done.set)
    task = asyncio.create_task(sub.run())
    sub.open()
    print(f"tap: subscribed to {where(args)}; waiting for messages", file=sys.stderr, flush=True)
    waiting = None
    if mode != "live":
        console = None
        if sys.stderr.isatty():
            from rich.console import Console

            console = Console(stderr=True)
        waiting = asyncio.create_task(report_waiting(tap, console))
    try:
        if mode == "live":
            from rich.live import Live

            with Live(tap.table(), refresh_per_second=4, transient=False) as live:
                while not tap.done.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(tap.done.wait(), 0.25)
                    live.update(tap.table())
        else:
            await tap.done.wait()
    finally:
        for t in (task, waiting):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        sys.stdout.flush()
    return 0


def _run(args: argparse.Namespace) -> int:
    mode = "json" if args.json else ("live" if sys.stdout.isatty() else "lines")
    try:
        return asyncio.run(_main(args, mode))
    except BrokenPipeError:  # `latentspeed tap | head`
        return 0


COMMAND = Command("tap", "subscribe to a marketstream and print its messages", _configure, _run)
