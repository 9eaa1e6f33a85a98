"""Test kit for the Bybit adapter: recorded frames, an independent reference book,
a collecting sink, and a local WebSocket server speaking Bybit v5's public protocol.

Imported by the tests as ``bybit_testkit`` (conftest.py puts this folder on sys.path;
pytest's importlib mode makes conftest itself unimportable).

The server (:class:`BybitServer`) answers ``subscribe``/``unsubscribe`` with the documented
ack, ``{"op":"ping"}`` with the documented pong, and plays scripted sessions built from the
recorded frames in ``fixtures/bybit``. It also serves as a standalone script
(``python bybit_testkit.py SCRIPT.json``) for the wheel-install test.
"""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    from latentspeed_core.testing import fixtures_dir
except ImportError:  # run as a standalone script without the core installed
    fixtures_dir = None

BYBIT = "bybit"

XRP_SESSION = "seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"


# -- recorded frames -------------------------------------------------------------------------
def fixture_path(rel: str) -> Path:
    return fixtures_dir() / BYBIT / rel


def load_frame(rel: str) -> dict:
    return json.loads(fixture_path(rel).read_text())


def load_session(rel: str = XRP_SESSION) -> list[dict]:
    return [json.loads(line) for line in fixture_path(rel).read_text().splitlines() if line.strip()]


def dumps(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"))


# -- an independent reference book: Decimal strings, dicts, a full sort at the end ------------
class RefBook:
    """Applies Bybit orderbook messages the slow, obvious way (no bisect, no floats until the end)."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.u: int | None = None

    def apply(self, msg: dict) -> None:
        data = msg["data"]
        if msg["type"] == "snapshot" or data["u"] == 1:
            self.bids = {Decimal(p): Decimal(q) for p, q in data["b"] if Decimal(q) != 0}
            self.asks = {Decimal(p): Decimal(q) for p, q in data["a"] if Decimal(q) != 0}
        else:
            assert self.u is not None and data["u"] == self.u + 1, "reference fed a discontinuous session"
            for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
                for p, q in levels:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = Decimal(q)
        self.u = data["u"]

    def levels(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])
        return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]

    def snapshot_frame(self, topic: str, symbol: str, ts: int, u: int | None = None) -> dict:
        """A snapshot frame of the current state, as Bybit sends on (re)subscribe."""
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])
        return {
            "topic": topic,
            "type": "snapshot",
            "ts": ts,
            "data": {
                "s": symbol,
                "b": [[str(p), str(q)] for p, q in bids],
                "a": [[str(p), str(q)] for p, q in asks],
                "u": self.u if u is None else u,
                "seq": 0,
            },
        }


def reference(frames: list[dict]) -> RefBook:
    ref = RefBook()
    for f in frames:
        ref.apply(f)
    return ref


def book_levels(book) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    n = len(book)
    return [tuple(x) for x in book.top_bids(n)], [tuple(x) for x in book.top_asks(n)]


# -- a sink that remembers what the feed published ----------------------------------------------
class Collector:
    def __init__(self) -> None:
        self.books: list[tuple[str, float | None, float | None, int, int]] = []
        self.trades: list = []
        self.last_book: dict[str, Any] = {}

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        bb, ba = book.best_bid(), book.best_ask()
        self.books.append((symbol, bb and bb[0], ba and ba[0], timestamp_ns, receipt_ns))
        self.last_book[symbol] = book_levels(book)

    def on_trade(self, feed, trade) -> None:
        self.trades.append(trade)


# -- the local Bybit server -----------------------------------------------------------------------
CLOSE = {"action": "close"}  # drop the connection abruptly mid-stream
SILENT = {"action": "silent"}  # stop sending and stop answering pings
AWAIT_RESUB = {"action": "await_resub"}  # pause the script until a topic is resubscribed


class BybitServer:
    """A loopback WebSocket server speaking Bybit v5's public protocol.

    ``sessions[i]`` scripts connection ``i`` (the last one repeats): a list of frames (dicts or
    raw strings) and actions, played once every topic the script needs has been subscribed.
    ``AWAIT_RESUB`` pauses the script until the client subscribes again to a topic it had
    unsubscribed (after the ack); the frames that follow it are what Bybit sends then: a fresh
    snapshot, and the deltas after it.
    """

    def __init__(
        self,
        sessions: list[list[Any]],
        market: str = "linear",
        max_args: int | None = None,
        answer_pings: bool = True,
        refuse_resubscribe: bool = False,
    ) -> None:
        self.sessions = sessions
        self.market = market
        self.max_args = max_args if max_args is not None else (10 if market == "spot" else None)
        self.answer_pings = answer_pings
        self.refuse_resubscribe = refuse_resubscribe
        self.connections = 0
        self.received: list[list[dict]] = []  # per connection, client messages in order
        self.port = 0
        self._server = None

    async def start(self, port: int = 0) -> BybitServer:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", port, compression=None, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/{self.market}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _ack(self, op: str, req_id: str, ok: bool = True, ret_msg: str | None = None) -> str:
        if ret_msg is None:  # spot echoes the op in ret_msg, linear/inverse leave it empty (docs)
            ret_msg = op if self.market == "spot" else ""
        return dumps({"success": ok, "ret_msg": ret_msg, "conn_id": "local-test", "req_id": req_id, "op": op})

    def _pong(self, req_id: str) -> str:
        return dumps(
            {"success": True, "ret_msg": "pong", "conn_id": "local-test", "req_id": req_id, "op": "ping"}
        )

    async def _handle(self, ws) -> None:
        index = self.connections
        self.connections += 1
        received: list[dict] = []
        self.received.append(received)
        script = self.sessions[min(index, len(self.sessions) - 1)]
        needed = {f["topic"] for f in script if isinstance(f, dict) and "topic" in f}
        state = {"silent": False, "subscribed": set(), "unsubscribed": set()}
        resubscribed = asyncio.Event()
        all_subscribed = asyncio.Event()
        if not needed:
            all_subscribed.set()

        async def play() -> None:
            await all_subscribed.wait()
            for step in script:
                if step is CLOSE:
                    ws.transport.abort()
                    return
                if step is SILENT:
                    state["silent"] = True
                    return
                if step is AWAIT_RESUB:
                    await resubscribed.wait()
                    resubscribed.clear()
                    continue
                await ws.send(step if isinstance(step, str) else dumps(step))

        player = asyncio.create_task(play())
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                received.append(msg)
                if state["silent"]:
                    continue
                op = msg.get("op")
                req_id = msg.get("req_id", "")
                args = msg.get("args") or []
                if op == "ping":
                    if self.answer_pings:
                        await ws.send(self._pong(req_id))
                elif op == "subscribe":
                    if self.max_args is not None and len(args) > self.max_args:
                        await ws.send(
                            self._ack("subscribe", req_id, False, f"error:args size >{self.max_args}")
                        )
                        continue
                    again = [t for t in args if t in state["unsubscribed"]]
                    if again and self.refuse_resubscribe:
                        await ws.send(
                            self._ack("subscribe", req_id, False, f"error:handler not found,topic:{again[0]}")
                        )
                        continue
                    await ws.send(self._ack("subscribe", req_id))
                    for topic in args:
                        if topic in state["unsubscribed"]:
                            state["unsubscribed"].discard(topic)
                            resubscribed.set()
                        state["subscribed"].add(topic)
                    if needed <= state["subscribed"]:
                        all_subscribed.set()
                elif op == "unsubscribe":
                    await ws.send(self._ack("unsubscribe", req_id))
                    for topic in args:
                        state["subscribed"].discard(topic)
                        state["unsubscribed"].add(topic)
        except Exception:
            pass
        finally:
            player.cancel()

    def subscribed_topics(self, connection: int) -> list[str]:
        return [t for m in self.received[connection] if m.get("op") == "subscribe" for t in m["args"]]


async def _serve_script(path: str) -> None:
    """Standalone: serve the sessions in a JSON file, print the URL, run until killed."""
    spec = json.loads(Path(path).read_text())
    server = await BybitServer(spec["sessions"], market=spec.get("market", "linear")).start()
    print(server.url, flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(_serve_script(sys.argv[1]))
