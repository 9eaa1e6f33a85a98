"""The idle rehearsal's order on Binance: the signed request send_new_order would write, not sent.

The engine trades on the loopback emulator of the WebSocket API (it checks every signature); the
rehearsed frame is unmasked and its request checked by the emulator's own signature check.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from test_binance_venue_engine import live_engine, two_quotes

from latentspeed_core.testing import client_frame_text
from latentspeed_core.types import Order, OrdType, TimeInForce


def unmask(data: bytes) -> dict:
    return orjson.loads(client_frame_text(data))


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_rehearsed_order_is_the_signed_request_and_nothing_is_sent(market):
    async def main():
        async with live_engine(market) as live:
            bid, _ask = await two_quotes(live)
            venue, emu = live.venue, live.emu
            seen, sent, used = len(emu.seen), venue.orders_sent, repr(venue.limits.__dict__)
            order = Order(bid.cl_ord_id, "BTC-USDT", bid.side, bid.qty, bid.price, OrdType.LIMIT, TimeInForce.GTC)
            request = unmask(venue.rehearse_new_order(order))
            placed = next(s for s in emu.seen if s.what == "order.place" and s.params["newClientOrderId"]
                          == request["params"]["newClientOrderId"])  # fmt: skip
            assert request["method"] == "order.place"
            ignore = {"timestamp", "signature"}
            assert {k: v for k, v in request["params"].items() if k not in ignore} == {
                k: v for k, v in placed.params.items() if k not in ignore
            }
            p = request["params"]
            emu._check_signature("&".join(f"{k}={p[k]}" for k in sorted(p) if k != "signature"), p["signature"])
            assert (len(emu.seen), venue.orders_sent, repr(venue.limits.__dict__)) == (seen, sent, used)

    asyncio.run(main())
