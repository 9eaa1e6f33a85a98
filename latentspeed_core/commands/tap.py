"""``latentspeed tap``: watch what a marketstream publishes (replaces the seed's ZMQ snippet).

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

from ..components import Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="marketstream host (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=5556, help="trades port; books on PORT+1 (default: %(default)s)"
    )
    p.add_argument(
        "--topic",
        action="append",
        metavar="PREFIX",
        help="topic prefix to subscribe to, e.g. MOCK-preprocessed_book (repeatable; default: all)",
    )
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N messages")
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


class _Tap:
    def __init__(self, args: argparse.Namespace, mode: str) -> None:
        self.args = args
        self.mode = mode
        self.count = 0
        self.done = asyncio.Event()
        self.books: dict[str, dict] = {}
        self.trades: dict[str, dict] = {}
        self.out = sys.stdout

    def _tick(self) -> None:
        self.count += 1
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
        from rich.table import Table

        t = Table(
            title=f"latentspeed tap  tcp://{self.args.host}:{self.args.port}/{self.args.port + 1}  ({self.count} msgs)"
        )
        for col in ("market", "seq", "bid", "ask", "spread bps", "imbalance", "OFI", "vol mid", "last trade"):
            t.add_column(col, justify="right" if col != "market" else "left")
        for key in sorted(set(self.books) | set(self.trades)):
            m = self.books.get(key)
            tr = self.trades.get(key)
            last = f"{tr['side']} {tr['amount']:.4g}@{tr['price']:.10g}" if tr else "-"
            if m:
                (b, qb), (a, qa) = m["bids"][0], m["asks"][0]
                t.add_row(
                    key,
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
                t.add_row(key, "-", "-", "-", "-", "-", "-", "-", last)
        return t


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
    print(
        f"tap: subscribed to tcp://{args.host}:{args.port} (trades) and :{args.port + 1} (books),"
        f" topics {', '.join(args.topic) if args.topic else '(all)'}",
        file=sys.stderr,
        flush=True,
    )
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
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sys.stdout.flush()
    return 0


def _run(args: argparse.Namespace) -> int:
    mode = "json" if args.json else ("live" if sys.stdout.isatty() else "lines")
    try:
        return asyncio.run(_main(args, mode))
    except BrokenPipeError:  # `latentspeed tap | head`
        return 0


COMMAND = Command("tap", "subscribe to a marketstream and print its messages", _configure, _run)
