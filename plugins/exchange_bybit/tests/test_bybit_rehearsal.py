"""The idle rehearsal's order on Bybit: the order.create frame send_new_order would write, not sent.

The engine trades on the loopback emulator of /v5/trade; an order is sent for real, then the same
order rehearsed: the unmasked request must be the same request (but its timestamp), and nothing
may reach the emulator or use the rate window.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from bybit_engine_kit import engine_on
from bybit_private_emulator import BybitEmulator

from latentspeed_core.testing import async_wait_for, client_frame_text
from latentspeed_core.types import Order, OrdType, Side, TimeInForce

pytest.importorskip("latentspeed_strategy_examples")


def unmask(data: bytes) -> dict:
    return orjson.loads(client_frame_text(data))


def test_a_rehearsed_order_is_the_request_that_would_be_sent_and_nothing_is_sent():
    async def main():
        async with BybitEmulator() as emu, engine_on(emu) as runner:
            engine, venue = runner.engine, runner.venue
            st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.01, 60_000.0)
            assert st is not None, engine.last_reject
            await async_wait_for(lambda: len(emu.orders) == 1, 10, "the order at the emulator")
            (placed,) = emu.orders.values()
            window = list(venue._create_rl._times)
            order = Order(st.cl_ord_id, "BTC-USDT", Side.BUY, 0.01, 60_000.0, OrdType.LIMIT, TimeInForce.GTC)
            request = unmask(venue.rehearse_new_order(order))
            assert request["op"] == "order.create"
            (args,) = request["args"]
            assert args["orderLinkId"] == placed.link
            assert (args["symbol"], args["side"], args["orderType"]) == ("BTCUSDT", "Buy", "Limit")
            assert float(args["qty"]) == 0.01 and float(args["price"]) == 60_000.0
            assert int(request["header"]["X-BAPI-TIMESTAMP"]) > 0
            # Nothing sent, no slot of the rate window used.
            assert len(emu.orders) == 1 and venue.orders_sent == 1
            assert list(venue._create_rl._times) == window
            # And an order the venue would refuse is refused the same way in rehearsal.
            with pytest.raises(ValueError, match="tick"):
                venue.rehearse_new_order(Order(0, "BTC-USDT", Side.BUY, 0.01, 60_000.05, OrdType.LIMIT,
                                               TimeInForce.GTC))  # fmt: skip

    asyncio.run(main())
