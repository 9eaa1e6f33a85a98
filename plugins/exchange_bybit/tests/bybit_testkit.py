"""Bybit's part of the venue test kit: recorded frames, Bybit's book rules read the obvious way, and a
loopback server speaking Bybit v5's public protocol (on the core's ``LoopbackWsServer``).

Imported by the tests as ``bybit_testkit`` (conftest.py puts this folder on sys.path; pytest's
importlib mode makes conftest itself unimportable). The server (:class:`BybitServer`) answers
``subscribe``/``unsubscribe`` with the documented ack and ``{"op":"ping"}`` with the documented pong,
starts a connection's script once every topic it sends is subscribed, and counts a subscribe to a
topic the client had unsubscribed as the request for a fresh snapshot (``AWAIT_RESYNC``). It also
serves as a standalone script (``python bybit_testkit.py SCRIPT.json``) for the wheel-install test.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from latentspeed_core.testing import (
    BookUpdate,
    LoopbackWsServer,
    ReferenceBook,
    TradePrint,
    WsConnection,
    fixtures_dir,
)

BYBIT = "bybit"
XRP_SESSION = "seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"
TRADES_3 = "unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json"


# -- recorded frames -------------------------------------------------------------------------------
def fixture_path(rel: str) -> Path:
    return fixtures_dir() / BYBIT / rel


def load_frame(rel: str) -> dict:
    return json.loads(fixture_path(rel).read_text())


def load_session(rel: str = XRP_SESSION) -> list[dict]:
    return [json.loads(line) for line in fixture_path(rel).read_text().splitlines() if line.strip()]


def dumps(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"))


def xrp_trade() -> dict:
    """The recorded linear publicTrade frame (3 trades), moved to XRPUSDT for the XRP session."""
    return json.loads(dumps(load_frame(TRADES_3)).replace("BTCUSDT", "XRPUSDT"))


# -- Bybit's rules, read the obvious way -----------------------------------------------------------
def read(frame: dict | str | bytes) -> BookUpdate | list[TradePrint] | None:
    """A frame as Bybit's docs define it: an orderbook message (a ``snapshot``, or a ``delta`` with
    absolute sizes; ``u == 1`` is the snapshot after a service restart), trades, or anything else."""
    msg = frame if isinstance(frame, dict) else json.loads(frame)
    if not isinstance(msg, dict):
        return None
    topic = msg.get("topic") or ""
    if topic.startswith("orderbook."):
        d = msg["data"]
        return BookUpdate(d["b"], d["a"], d["u"], snapshot=msg["type"] == "snapshot" or d["u"] == 1)
    if topic.startswith("publicTrade."):
        return [TradePrint(float(t["p"]), float(t["v"]), t["S"].lower(), t["i"]) for t in msg["data"]]
    return None


def reference(frames: list[dict]) -> ReferenceBook:
    """The book after ``frames``, which must be continuous (each delta's ``u`` one more than the last)."""
    book = ReferenceBook()
    for f in frames:
        u = read(f)
        if isinstance(u, BookUpdate):
            assert u.snapshot or u.seq == book.seq + 1, "reference fed a discontinuous session"
            book.update(u)
    return book


def snapshot_frame(book: ReferenceBook, topic: str, symbol: str, ts: int, u: int | None = None) -> dict:
    """A snapshot frame of ``book``, as Bybit sends on (re)subscribe (``u``: the book's own by default)."""
    bids, asks = book.decimal_levels()
    data = {"s": symbol, "b": [[str(p), str(q)] for p, q in bids], "a": [[str(p), str(q)] for p, q in asks],
            "u": book.seq if u is None else u, "seq": 0}  # fmt: skip
    return {"topic": topic, "type": "snapshot", "ts": ts, "data": data}


# -- the loopback Bybit ----------------------------------------------------------------------------
class BybitServer(LoopbackWsServer):
    """Bybit v5's public protocol on loopback: acks, pongs, the spot args limit, resubscribes.

    ``max_args``: subscribe requests with more topics are refused (spot: 10, Bybit's limit);
    ``answer_pings``: pong or not; ``refuse_resubscribe``: refuse a subscribe to a topic the client
    had unsubscribed (as Bybit does when the topic is gone).
    """

    def __init__(
        self,
        sessions: list,
        market: str = "linear",
        max_args: int | None = None,
        answer_pings: bool = True,
        refuse_resubscribe: bool = False,
    ) -> None:
        super().__init__(sessions)
        self.market = market
        self.path = f"/v5/public/{market}"
        self.max_args = max_args if max_args is not None else (10 if market == "spot" else None)
        self.answer_pings = answer_pings
        self.refuse_resubscribe = refuse_resubscribe

    @property
    def received(self) -> list[list[dict]]:
        """Per connection, the client's messages."""
        return [[json.loads(m) for m in conn.received] for conn in self.connections]

    def subscribed_topics(self, connection: int) -> list[str]:
        return [t for m in self.received[connection] if m.get("op") == "subscribe" for t in m["args"]]

    def ready(self, conn: WsConnection, script) -> bool:
        # the topics of the script's frames given as dicts (text frames are junk, or changed ones)
        needed = {step["topic"] for step in script if isinstance(step, dict) and "topic" in step}
        return needed <= conn.state.setdefault("subscribed", set())

    def wants_snapshot(self, conn: WsConnection, message: str) -> bool:
        msg = _json(message)
        if not isinstance(msg, dict) or msg.get("op") != "subscribe" or self.refuse_resubscribe:
            return False
        return any(t in conn.state.get("unsubscribed", ()) for t in msg.get("args") or ())

    async def respond(self, conn: WsConnection, message: str) -> None:
        msg = _json(message)
        if not isinstance(msg, dict):
            return
        subscribed = conn.state.setdefault("subscribed", set())
        unsubscribed = conn.state.setdefault("unsubscribed", set())
        op, req_id, args = msg.get("op"), msg.get("req_id", ""), msg.get("args") or []
        if op == "ping":
            if self.answer_pings:
                await conn.send_raw({"success": True, "ret_msg": "pong", "conn_id": "local-test",
                                     "req_id": req_id, "op": "ping"})  # fmt: skip
        elif op == "subscribe":
            if self.max_args is not None and len(args) > self.max_args:
                await conn.send_raw(
                    self._ack("subscribe", req_id, False, f"error:args size >{self.max_args}")
                )
                return
            again = [t for t in args if t in unsubscribed]
            if again and self.refuse_resubscribe:
                await conn.send_raw(
                    self._ack("subscribe", req_id, False, f"error:handler not found,topic:{again[0]}")
                )
                return
            await conn.send_raw(self._ack("subscribe", req_id))
            unsubscribed.difference_update(args)
            subscribed.update(args)
        elif op == "unsubscribe":
            await conn.send_raw(self._ack("unsubscribe", req_id))
            subscribed.difference_update(args)
            unsubscribed.update(args)

    def _ack(self, op: str, req_id: str, ok: bool = True, ret_msg: str | None = None) -> dict:
        if ret_msg is None:  # spot echoes the op in ret_msg, linear/inverse leave it empty (docs)
            ret_msg = op if self.market == "spot" else ""
        return {"success": ok, "ret_msg": ret_msg, "conn_id": "local-test", "req_id": req_id, "op": op}


def _json(step: Any) -> Any:
    if isinstance(step, dict):
        return step
    if isinstance(step, str | bytes):
        try:
            return json.loads(step)
        except ValueError:
            return None
    return None


async def _serve_script(path: str) -> None:
    """Standalone: serve the sessions in a JSON file, print the URL, run until killed."""
    spec = json.loads(Path(path).read_text())
    server = await BybitServer(spec["sessions"], market=spec.get("market", "linear")).start()
    print(server.url, flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(_serve_script(sys.argv[1]))
