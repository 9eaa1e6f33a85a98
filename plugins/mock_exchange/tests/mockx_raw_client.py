"""An INDEPENDENT mock-exchange protocol client for tests: raw sockets + struct, the
layouts copied from issue 4, deliberately not importing latentspeed_mock_exchange.protocol.
"""

from __future__ import annotations

import socket
import struct
import time

# -- the wire protocol, as the issue states it -------------------------------------------
HDR = struct.Struct("<HHIQ")
BODIES = {
    2: struct.Struct("<QQQIBBqqqqH"),  # EXECUTION_REPORT
    5: struct.Struct("<"),  # HEARTBEAT
    6: struct.Struct("<Iqq16s"),  # SECURITY_DEFINITION
    7: struct.Struct("<IqqBQ"),  # TRADE
}
MD_HEAD = struct.Struct("<IH")
MD_ENTRY = struct.Struct("<qqBB")
NEW_ORDER = struct.Struct("<QIBBBqq")
CANCEL = struct.Struct("<QQI")
EXEC_FIELDS = ("cl_ord_id", "order_id", "exec_id", "symbol_id", "side", "exec_type", "last_px", "last_qty",
               "leaves_qty", "cum_qty", "reject_reason")  # fmt: skip
E8 = 100_000_000
NEW, PARTIAL, FILL, CANCELED, REJECTED = range(5)


class RawClient:
    """Blocking client: sends orders, reads and parses messages, checks seq numbering on every read."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq_out = 0
        self.seq_in = 0
        self.buf = b""
        self.symbols: dict[str, dict] = {}  # name -> definition
        self.books: dict[int, dict] = {}  # symbol_id -> last MARKET_DATA

    # sending
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _send(self, msg_type: int, body: bytes) -> None:
        self.seq_out += 1
        self.sock.sendall(HDR.pack(16 + len(body), msg_type, self.seq_out, time.time_ns()) + body)

    def new_order(self, cl, sid, side, ord_type, tif, price, qty) -> None:
        """price/qty in units (floats); converted to 8-decimal fixed point here."""
        self._send(3, NEW_ORDER.pack(cl, sid, side, ord_type, tif, round(price * E8), round(qty * E8)))

    def new_order_fixed(self, cl, sid, side, ord_type, tif, price, qty) -> None:
        self._send(3, NEW_ORDER.pack(cl, sid, side, ord_type, tif, price, qty))

    def cancel(self, cl, orig, sid) -> None:
        self._send(4, CANCEL.pack(cl, orig, sid))

    def heartbeat(self) -> None:
        self._send(5, b"")

    # receiving
    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the exchange")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> dict:
        length, msg_type, seq, ts = HDR.unpack(self._read(16))
        assert seq == self.seq_in + 1, f"seq {seq} after {self.seq_in}"
        self.seq_in = seq
        body = self._read(length - 16)
        msg = {"type": msg_type, "seq": seq, "ts": ts, "length": length}
        if msg_type == 1:
            sid, n = MD_HEAD.unpack_from(body)
            assert length == 16 + 6 + 18 * n
            entries = [MD_ENTRY.unpack_from(body, 6 + 18 * i) for i in range(n)]
            msg.update(
                symbol_id=sid, bids=[e for e in entries if e[2] == 0], asks=[e for e in entries if e[2] == 1]
            )
            self.books[sid] = msg
        elif msg_type == 2:
            msg.update(zip(EXEC_FIELDS, BODIES[2].unpack(body), strict=True))
        elif msg_type == 6:
            sid, tick, lot, name = BODIES[6].unpack(body)
            msg.update(symbol_id=sid, tick=tick, lot=lot, name=name.rstrip(b"\0").decode())
            self.symbols[msg["name"]] = msg
        elif msg_type == 7:
            sid, px, qty, aggr, tid = BODIES[7].unpack(body)
            msg.update(symbol_id=sid, price=px, qty=qty, aggressor=aggr, trade_id=tid)
        else:
            assert msg_type == 5 and length == 16, msg
        return msg

    def recv_until(self, pred, limit: int = 10_000) -> dict:
        for _ in range(limit):
            m = self.recv()
            if pred(m):
                return m
        raise AssertionError("message not received")

    def reports(self, n: int, cl: int | None = None) -> list[dict]:
        """The next ``n`` execution reports (optionally for one cl_ord_id), skipping market data."""
        out = []
        while len(out) < n:
            m = self.recv_until(lambda m: m["type"] == 2)
            if cl is None or m["cl_ord_id"] == cl:
                out.append(m)
        return out

    def handshake(self) -> None:
        """Read the definitions and the first snapshot of every symbol."""
        m = self.recv()
        while m["type"] == 6:
            m = self.recv()
        assert m["type"] == 1, "market data follows the definitions"
        while len(self.books) < len(self.symbols):
            self.recv()

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True once the exchange closed the connection (EOF or reset), reading anything pending."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
