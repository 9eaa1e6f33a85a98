"""One client's sustained order rate against a running mock exchange (for benchmarks).

Writes NEW_ORDERs one per ``transport.write`` (as an engine does), keeping at most
``in_flight`` orders without a final report, and counts until every order is final
(FILL, CANCELED or REJECTED). Run the exchange with ``log_orders`` off, or the
measurement is of the logging.
"""

from __future__ import annotations

import asyncio
import time

from . import protocol as P

# exec_type sits after the header and cl_ord_id, order_id, exec_id (u64) and symbol_id (u32), side (u8).
_EXEC_TYPE_OFFSET = P.HEADER_SIZE + 8 * 3 + 4 + 1
_FINAL = frozenset((P.EXEC_FILL, P.EXEC_CANCELED, P.EXEC_REJECTED))


async def measure_orders_per_s(
    host: str = "127.0.0.1",
    port: int = 9000,
    orders: int = 50_000,
    in_flight: int = 2_000,
    symbol_id: int = 1,
    qty: int = 10_000,
    timeout: float = 60.0,
) -> float:
    """Send ``orders`` small IOC MARKET orders (alternating sides); return orders per second."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    ready = loop.create_future()
    state = {"final": 0, "wake_at": 0}
    wake: list[asyncio.Future] = []  # resolved once enough orders are final to send more
    decoder = P.FrameDecoder()

    class _Client(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            final = 0
            for msg_type, buf, off in decoder.feed(data):
                if msg_type == P.EXECUTION_REPORT:
                    final += buf[off + _EXEC_TYPE_OFFSET] in _FINAL
                elif msg_type != P.SECURITY_DEFINITION and not ready.done():
                    ready.set_result(None)  # definitions complete
            if final:
                n = state["final"] = state["final"] + final
                if n >= orders and not done.done():
                    done.set_result(None)
                if wake and n >= state["wake_at"] and not wake[0].done():
                    wake[0].set_result(None)

        def connection_lost(self, exc) -> None:
            if not done.done():
                done.set_exception(ConnectionError(f"exchange closed the connection: {exc}"))

    transport, _ = await loop.create_connection(_Client, host, port)
    try:
        async with asyncio.timeout(timeout):
            await ready
            pack = P.NEW_ORDER_MSG.pack
            write = transport.write
            t0 = time.perf_counter()
            for i in range(1, orders + 1):
                write(pack(P.NEW_ORDER_SIZE, P.NEW_ORDER, i, time.time_ns(), i, symbol_id, i & 1, P.ORD_MARKET,
                           P.TIF_IOC, 0, qty))  # fmt: skip
                if i - state["final"] >= in_flight:  # window full: wait until half of it is final
                    state["wake_at"] = i - in_flight // 2
                    wake[:] = [loop.create_future()]
                    await asyncio.wait([wake[0], done], return_when=asyncio.FIRST_COMPLETED)
            await done
            return orders / (time.perf_counter() - t0)
    finally:
        transport.close()
