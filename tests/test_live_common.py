"""latentspeed_core.live: what every live venue shares (credentials, instrument rules, REST, backoff)."""

from __future__ import annotations

import asyncio

import pytest

from latentspeed_core.live import (
    ApiKeyConfig,
    Backoff,
    CredentialsError,
    InstrumentRules,
    check_order,
    http_request,
)
from latentspeed_core.types import Order, OrdType, Side

RULES = InstrumentRules("BTC-USDT", "BTCUSDT", tick_size=0.01, lot_size=0.00001, min_qty=0.00001, max_qty=9000,
                        min_notional=5.0, market_lot_size=0.001)  # fmt: skip


@pytest.mark.parametrize(
    ("order", "rule"),
    [
        (Order(1, "BTC-USDT", Side.BUY, 0.00015, 60000.01), None),
        (Order(1, "BTC-USDT", Side.BUY, 0.000015, 60000.01), "LOT_SIZE"),
        (Order(1, "BTC-USDT", Side.BUY, 0.001, 60000.015), "PRICE_FILTER"),
        (Order(1, "BTC-USDT", Side.BUY, 0.00001, 60000.01), "MIN_NOTIONAL"),
        (Order(1, "BTC-USDT", Side.BUY, 9001, 60000.01), "maxQty"),
        (Order(1, "BTC-USDT", Side.SELL, 0.0015, 0.0, OrdType.MARKET), "lot size 0.001"),
        (Order(1, "BTC-USDT", Side.SELL, 0.002, 0.0, OrdType.MARKET), None),
        (Order(1, "BTC-USDT", Side.SELL, 0.0, 60000.0), "positive"),
    ],
)
def test_orders_breaking_a_rule_are_refused_with_the_rule_named(order, rule):
    why = check_order(order, RULES, mid=60000.0)
    assert (why is None) if rule is None else (rule in why), why


def test_grid_checks_tolerate_float_representation():
    assert check_order(Order(1, "BTC-USDT", Side.BUY, 0.3, 0.07), InstrumentRules("X", "X", 0.01, 0.1)) is None


def test_credentials_come_from_config_env_or_file_and_never_show(tmp_path, monkeypatch):
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    monkeypatch.delenv("ACME_API_SECRET", raising=False)
    cfg = ApiKeyConfig(api_key="k-123456", api_secret="s-abcdef")
    assert cfg.credentials("ACME") == ("k-123456", "s-abcdef")
    assert "k-123456" not in repr(cfg) and "s-abcdef" not in str(cfg.model_dump())
    monkeypatch.setenv("ACME_API_KEY", "env-key")
    (tmp_path / "secret").write_text("file-secret\n")
    assert ApiKeyConfig(api_secret_file=tmp_path / "secret").credentials("ACME") == ("env-key", "file-secret")
    monkeypatch.delenv("ACME_API_KEY")
    with pytest.raises(CredentialsError, match="missing api_key: set ACME_API_KEY"):
        ApiKeyConfig(api_secret="x").credentials("ACME")
    with pytest.raises(CredentialsError, match="api_secret_file .*: No such file"):
        ApiKeyConfig(api_key="x", api_secret_file=tmp_path / "none").credentials("ACME")


def test_http_request_returns_error_statuses_and_raises_on_transport_failure():
    from latentspeed_core.testing import free_port

    async def main():
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"code":-1021,"msg":"Timestamp outside recvWindow"}'
            writer.write(b"HTTP/1.1 400 Bad Request\r\nX-MBX-USED-WEIGHT-1M: 7\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)  # fmt: skip
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            r = await http_request("GET", f"http://127.0.0.1:{port}/api/v3/order")
        finally:
            server.close()
        assert r.status == 400 and r.headers["x-mbx-used-weight-1m"] == "7" and b"-1021" in r.body
        with pytest.raises(OSError):
            await http_request("GET", f"http://127.0.0.1:{free_port()}/", timeout=2)

    asyncio.run(main())


def test_backoff_grows_with_jitter_and_resets_after_a_healthy_connection():
    b = Backoff(initial=1.0, cap=8.0, healthy_after=60)
    delays = [b.delay() for _ in range(6)]
    assert 0.5 <= delays[0] <= 1.0 and all(d <= 8.0 for d in delays) and delays[-1] >= 4.0
    b.connected_for(61)
    assert b.delay() <= 1.0
