"""MockVenue: order entry on the mock exchange for the engine.

``send_new_order`` / ``send_cancel`` encode one message and write it at once (one
``transport.write``, never awaiting). Execution reports are decoded into
:class:`~latentspeed_core.types.ExecutionReport` (``receipt_ns`` stamped on read)
and handed to the listener.

``cork()`` / ``uncork()`` batch: between them messages are encoded into a buffer and
``uncork`` writes them all with one ``transport.write`` (the engine corks around each
strategy callback, so a requote of cancels and new orders costs one syscall).

The same connection also carries MARKET_DATA and TRADE, so the engine can use the
venue as its market-data source and measure tick-to-trade on one socket: if the
listener has ``on_market_data(symbol, bids, asks, receipt_ns)`` (float
``[price, qty]`` lists, best first, sizes > 0, one level per price: a fresh list per
message the receiver may keep) and/or ``on_venue_trade(trade)``, they are
called; the check is done once per connection, not per message.

Superseded snapshots: MARKET_DATA is a full top-N snapshot, so when one read holds
several for the same symbol, all but the last are stale before they are handled. A
listener with ``on_superseded_market_data(symbol, bids, asks, receipt_ns)`` gets
those through it (the engine updates its book and features but asks no strategy to
act on a stale book); without it they go to ``on_market_data`` like any other.

Connection rules the engine must know: ``on_venue_connected`` fires once the
symbol definitions are complete (the first message after the SECURITY_DEFINITIONs);
when the connection drops the exchange cancels every resting order of that
connection (protocol rule), and the client order id space starts afresh on the
new connection.
"""

from __future__ import annotations

import logging
import struct
import time

from latentspeed_core.logs import RateLimitedLog
from latentspeed_core.types import ExecType, ExecutionReport, Order, RejectReason, Side, Trade
from latentspeed_core.venue import Instrument, Venue, VenueListener

from . import protocol as P
from .client import ExchangeLink, maintain
from .config import MockVenueConfig

log = logging.getLogger("latentspeed_mock_exchange.venue")

_SIDES = (Side.BUY, Side.SELL)
_EXEC_TYPES = tuple(ExecType)
_REASONS = tuple(RejectReason)
#: Fixed point to float by division: the nearest double, with no 2997.2000000000003 noise.
_SCALE = P.SCALE
_TRADE_SIDES = ("buy", "sell")
_pack_new = P.NEW_ORDER_MSG.pack
_LENGTH = struct.Struct("<H")  # a frame's first field: its length
_NEW_SIZE = P.NEW_ORDER_SIZE
_NEW = P.NEW_ORDER
_time_ns = time.time_ns
#: The symbol_id of a MARKET_DATA (first body field), read without decoding the message.
_md_sid = struct.Struct("<16xI").unpack_from


class MockVenue(Venue):
    name = "MOCK"
    #: MARKET_DATA and TRADE arrive on the order connection (``market_data.from_venue``).
    carries_market_data = True

    def __init__(self, config: MockVenueConfig | None = None) -> None:
        super().__init__(config or MockVenueConfig())
        #: Symbol name -> definition, learned from SECURITY_DEFINITION on every connect.
        self.instruments: dict[str, Instrument] = {}
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._link: ExchangeLink | None = None
        self._listener: VenueListener | None = None
        self._on_md = None
        #: (buffer, offset) of the last MARKET_DATA handled, for :meth:`rehearse_market_data`.
        self._last_md: tuple[bytes, int] | None = None
        self._scratch = P.FrameDecoder()
        #: Stands for the connection in :meth:`rehearse_new_order` (keeps what is written).
        self._keep = ExchangeLink.keeping("mock venue (rehearsal)")
        self._on_stale_md = None
        self._on_trade = None
        self.orders_sent = 0
        self.cancels_sent = 0
        self.reports = 0
        #: Messages whose content no exchange could mean (a price <= 0, a crossed book): skipped.
        self.bad_messages = 0
        self._rlog = RateLimitedLog(log)
        #: Between cork() and uncork(): encoded messages waiting for the one write.
        self.corked = False
        self._pending: list[bytes] = []

    # -- running ---------------------------------------------------------------------------
    async def run(self, listener: VenueListener) -> None:
        self._listener = listener
        self._on_md = getattr(listener, "on_market_data", None)
        self._on_stale_md = getattr(listener, "on_superseded_market_data", None)
        self._on_trade = getattr(listener, "on_venue_trade", None)
        await maintain("mock venue", self.config, self._on_frames, self._up, self._down)

    def _up(self, link: ExchangeLink) -> None:
        self._link = link
        self._pending.clear()  # never carry messages (and their seq numbers) to a new connection
        # Cleared, not replaced: a rehearsal twin shares these tables.
        self.instruments.clear()
        self._ids.clear()
        self._names.clear()

    def _down(self, link: ExchangeLink, reason: str) -> None:
        self._link = None
        if self.connected:
            self.connected = False
            if self._listener is not None:
                self._listener.on_venue_disconnected(reason)

    def _on_frames(self, frames: list, receipt_ns: int) -> None:
        stale = self._superseded(frames) if len(frames) > 1 and self._on_stale_md is not None else None
        for i, (msg_type, buf, off) in enumerate(frames):
            try:
                if stale and i in stale:
                    sid, bids, asks = P.decode_book(buf, off)
                    self._on_stale_md(self._names.get(sid, ""), bids, asks, receipt_ns)
                else:
                    self._on_message(msg_type, buf, off, receipt_ns)
            except P.ProtocolError as exc:  # impossible content: counted and skipped, never applied
                self.bad_messages += 1
                self._rlog("bad", logging.WARNING, "skipped %s from the exchange: %s", P.MsgType(msg_type).name, exc)
            except Exception:  # a listener bug must not drop the other reports of this read
                log.exception("handling %s failed", P.MsgType(msg_type).name)

    def _superseded(self, frames: list) -> set[int] | None:
        """Indexes of the MARKET_DATA of this read that a later one of the same symbol replaces."""
        last: dict[int, int] = {}
        stale = None
        for i, (msg_type, buf, off) in enumerate(frames):
            if msg_type == P.MARKET_DATA and self.connected:
                (sid,) = _md_sid(buf, off)
                prev = last.get(sid)
                if prev is not None:
                    if stale is None:
                        stale = set()
                    stale.add(prev)
                last[sid] = i
        return stale

    def _on_message(self, msg_type: int, buf: bytes, off: int, receipt_ns: int) -> None:
        listener = self._listener
        names = self._names
        if msg_type == P.EXECUTION_REPORT:
            (_l, _t, _s, ts, cl, oid, xid, sid, side, et, px, lq, leaves, cum, reason) = (
                P.unpack_execution_report(buf, off)
            )
            self.reports += 1
            if (et == P.EXEC_FILL or et == P.EXEC_PARTIAL_FILL) and (px <= 0 or lq <= 0):  # found by fuzzing
                raise P.ProtocolError(f"impossible fill: last_px {px} last_qty {lq} (fixed point)")
            try:
                report = ExecutionReport(
                    cl, oid, xid, names.get(sid, ""), _SIDES[side], _EXEC_TYPES[et], px / _SCALE, lq / _SCALE,
                    leaves / _SCALE, cum / _SCALE, _REASONS[reason], ts, receipt_ns,
                )  # fmt: skip
            except IndexError:
                log.warning("skipped execution report with invalid enum (side=%d exec_type=%d reason=%d)",
                            side, et, reason)  # fmt: skip
                return
            listener.on_execution_report(report)
            return
        if msg_type == P.SECURITY_DEFINITION:
            _l, _t, _s, _ts, sid, tick, lot, raw = P.unpack_security_definition(buf, off)
            name = P.symbol_name(raw)
            self._ids[name] = sid
            names[sid] = name
            self.instruments[name] = Instrument(sid, name, tick / _SCALE, lot / _SCALE)
            return
        if not self.connected:
            # The first message after the definitions: the session is ready for orders.
            self.connected = True
            log.info("mock venue ready: %d symbols (%s)", len(self._ids), ",".join(self._ids))
            listener.on_venue_connected()
        if msg_type == P.MARKET_DATA:
            if self._on_md is not None:
                self._last_md = (buf, off)
                sid, bids, asks = P.decode_book(buf, off)
                self._on_md(names.get(sid, ""), bids, asks, receipt_ns)
        elif msg_type == P.TRADE:
            if self._on_trade is not None:
                _l, _t, _s, ts, sid, px, qty, aggr, tid = P.unpack_trade(buf, off)
                if px <= 0 or qty <= 0:
                    raise P.ProtocolError(f"impossible TRADE: price {px} qty {qty} (fixed point)")
                self._on_trade(
                    Trade(
                        "MOCK",
                        names.get(sid, ""),
                        ts,
                        receipt_ns,
                        px / _SCALE,
                        qty / _SCALE,
                        _TRADE_SIDES[aggr & 1],
                        str(tid),
                    )  # fmt: skip
                )
        elif msg_type != P.HEARTBEAT:
            log.warning("unexpected %s from the exchange; ignored", P.MsgType(msg_type).name)

    # -- order entry (hot path) ------------------------------------------------------------
    def cork(self) -> None:
        """Hold messages until :meth:`uncork` (which writes them in one ``transport.write``)."""
        self.corked = True

    def uncork(self) -> None:
        """Write everything held since :meth:`cork` at once; raises ``ConnectionError`` if down."""
        self.corked = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        link = self._link
        if link is None:
            raise ConnectionError("mock venue: not connected")
        link.write(data)

    def _write(self, link: ExchangeLink, data: bytes) -> None:
        if self.corked:
            self._pending.append(data)
        else:
            link.write(data)

    def send_new_order(self, order: Order) -> None:
        link = self._link
        if link is None or not self.connected:
            raise ConnectionError("mock venue: not connected")
        sid = self._ids.get(order.symbol)
        if sid is None:
            raise ValueError(f"mock venue: unknown symbol {order.symbol!r}; defined: {', '.join(self._ids)}")
        link.seq_out += 1
        data = _pack_new(
            _NEW_SIZE, _NEW, link.seq_out, _time_ns(), order.cl_ord_id, sid, order.side, order.ord_type,
            order.tif, round(order.price * _SCALE), round(order.qty * _SCALE),
        )  # fmt: skip
        if self.corked:
            self._pending.append(data)
        else:
            link.write(data)
        self.orders_sent += 1

    # -- rehearsal (engine/rehearsal.py): the same work, nothing sent, nothing changed ----------
    def rehearse_market_data(self, on_market_data) -> None:
        """Handle the last MARKET_DATA again (its bytes are kept) through the same code as its tick,
        handing the decoded book to ``on_market_data(symbol, bids, asks, receipt_ns)`` instead of
        the listener."""
        last = self._last_md
        if last is None:
            return
        buf, off = last
        (length,) = _LENGTH.unpack_from(buf, off)
        self._scratch.feed(buf[off : off + length])  # the read's frame splitting, on a scratch decoder
        real = self._on_md
        self._on_md = on_market_data
        try:
            self._on_frames([(P.MARKET_DATA, *last)], 0)
        finally:
            self._on_md = real

    def rehearse_new_order(self, order: Order) -> bytes:
        """The bytes :meth:`send_new_order` would write for ``order``: its own code runs, with the
        connection swapped for one that keeps the bytes, and no sequence number or count used."""
        link = self._link
        if link is None:
            raise ConnectionError("mock venue: not connected")
        keep = self._keep
        keep.seq_out = link.seq_out
        sent, corked = self.orders_sent, self.corked
        self._link, self.corked = keep, False
        try:
            self.send_new_order(order)
        finally:
            self._link, self.orders_sent, self.corked = link, sent, corked
        return keep.transport.data

    def rehearsal_twin(self) -> MockVenue:
        """A MockVenue connected to nothing: its sends go into a keeping link, never a socket.
        It shares this venue's symbol tables (read only), so it encodes as this one does."""
        twin = MockVenue(self.config)
        twin._ids, twin._names, twin.instruments = self._ids, self._names, self.instruments
        twin._link = ExchangeLink.keeping("mock venue (rehearsal twin)")
        twin.connected = True
        return twin

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        link = self._link
        if link is None or not self.connected:
            raise ConnectionError("mock venue: not connected")
        sid = self._ids.get(symbol)
        if sid is None:
            raise ValueError(f"mock venue: unknown symbol {symbol!r}")
        link.seq_out += 1
        self._write(link, P.CANCEL_MSG.pack(P.CANCEL_SIZE, P.CANCEL_ORDER, link.seq_out, time.time_ns(),
                                            cl_ord_id, orig_cl_ord_id, sid))  # fmt: skip
        self.cancels_sent += 1

    def symbol_id(self, symbol: str) -> int | None:
        return self._ids.get(symbol)
