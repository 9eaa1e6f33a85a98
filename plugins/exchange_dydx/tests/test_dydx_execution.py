"""The ``dydx`` venue: dYdX v4 order entry, against a loopback validator (gRPC) and indexer (REST + WS).

What goes in (orders from the engine, fills and stream drops at the emulated indexer, a sequence
taken by another client) and what must come out (the transactions the validator decodes, order
states, fills counted once, positions). The emulator is ``dydx_chain_emulator.py``; market data
comes from the dYdX feed test kit (``dydx_testkit.py``) playing the recorded ETH-USD book.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

pytest.importorskip("grpc", reason="the dydx venue needs the trade extra")
pytest.importorskip("v4_proto", reason="the dydx venue needs the trade extra")
pytest.importorskip("coincurve", reason="the dydx venue needs the trade extra")
pytest.importorskip("latentspeed_strategy_examples")

from dydx_chain_emulator import (  # noqa: E402 (after the skips: it imports the trade extra)
    TEST_ADDRESS,
    TEST_MNEMONIC,
    TEST_PRIVATE_KEY_HEX,
    TEST_PUBLIC_KEY,
    ChainEmulator,
    recorded_markets,
    verify_signature,
)
from latentspeed_exchange_dydx import config as dydx_config  # noqa: E402
from latentspeed_exchange_dydx.config import DydxVenueConfig, grpc_target  # noqa: E402
from latentspeed_exchange_dydx.execution import (  # noqa: E402
    DydxVenue,
    OrderIds,
    TxSigner,
    Wallet,
    _fill_fee,
    _Live,
    _ripemd160_py,
    order_uuid,
    subaccount_uuid,
)
from latentspeed_exchange_dydx.quantums import (  # noqa: E402
    GridError,
    market_spec,
    price_of,
    size_of,
    to_quantums,
    to_subticks,
)
from pydantic import SecretStr, ValidationError  # noqa: E402
from v4_proto.cosmos.tx.v1beta1 import tx_pb2  # noqa: E402
from v4_proto.dydxprotocol.clob import order_pb2  # noqa: E402
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx  # noqa: E402

from latentspeed_core import hookimpl  # noqa: E402
from latentspeed_core.components import Component  # noqa: E402
from latentspeed_core.config import ConfigError, StrictModel, validate  # noqa: E402
from latentspeed_core.engine.config import resolve  # noqa: E402
from latentspeed_core.engine.orders import UNKNOWN  # noqa: E402
from latentspeed_core.engine.runner import EngineRunner  # noqa: E402
from latentspeed_core.engine.strategy import Strategy  # noqa: E402
from latentspeed_core.plugins import load_registry  # noqa: E402
from latentspeed_core.testing import async_wait_for  # noqa: E402
from latentspeed_core.types import (  # noqa: E402
    ExecType,
    ExecutionReport,
    Order,
    OrderStatus,
    RejectReason,
    Side,
    TimeInForce,
)

SYMBOL = "ETH-USD"
QTY = 0.01  # 10 steps of 0.001: 10_000_000 quantums (atomicResolution -9)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


# -- keys, ids, transactions --------------------------------------------------------------------------
def test_the_wallet_matches_the_official_clients_test_vectors():
    wallet = Wallet.from_mnemonic(TEST_MNEMONIC)
    assert wallet.public_key == TEST_PUBLIC_KEY
    assert wallet.address == TEST_ADDRESS
    assert wallet._key.secret.hex() == TEST_PRIVATE_KEY_HEX
    assert repr(wallet) == f"Wallet({TEST_ADDRESS})"
    # Whitespace in the mnemonic does not change the key (BIP-39 joins words with one space).
    assert Wallet.from_mnemonic("  " + TEST_MNEMONIC.replace(" ", "   ") + "\n").address == TEST_ADDRESS


def test_pure_python_ripemd160_equals_openssl():
    hashlib = pytest.importorskip("hashlib")
    try:
        hashlib.new("ripemd160")
    except ValueError:
        pytest.skip("this OpenSSL has no RIPEMD-160 to compare with")
    for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 1000):
        data = os.urandom(n)
        assert _ripemd160_py(data) == hashlib.new("ripemd160", data).digest()


def test_indexer_ids_are_the_recorded_ones():
    # Recorded on the live indexer (nautilus_trader test data, v4_accounts_fills.json): subaccount
    # dydx1kzsv.../0 is 4484a830-..., its short-term order clientId 1497046405 on clob 1 is 70dbcf99-...
    sub = subaccount_uuid("dydx1kzsvkf2ghjqlysuffdkhcdctknl4rsvcx5hkm5", 0)
    assert sub == "4484a830-fa43-5b04-ba00-3621a33ef89d"
    assert order_uuid(sub, 1497046405, 1, 0) == "70dbcf99-214e-54f5-9ddd-3c5e1a46b95e"
    assert order_uuid(sub, 1560051747, 1, 0) == "1a28b05a-eb97-5945-a786-12ba7320eb30"
    fast = OrderIds(sub)  # the venue's per-order form
    assert fast(1497046405, 1, 0) == "70dbcf99-214e-54f5-9ddd-3c5e1a46b95e"
    for cid, clob, flags in ((0, 0, 0), (2**32 - 1, 127, 64), (123, 1, 32)):
        assert fast(cid, clob, flags) == order_uuid(sub, cid, clob, flags)


def test_signed_transactions_are_canonical_and_verify():
    wallet = Wallet.from_mnemonic(TEST_MNEMONIC)
    signer = TxSigner(wallet, "dydx-testnet-4", 33)
    order = order_pb2.Order(
        order_id=order_pb2.OrderId(client_id=7, order_flags=64, clob_pair_id=1),
        side=order_pb2.Order.SIDE_SELL, quantums=10_000_000, subticks=3_393_900_000, good_til_block_time=1_900_000_000,
    )  # fmt: skip
    order.order_id.subaccount_id.owner = TEST_ADDRESS
    msg = clob_tx.MsgPlaceOrder(order=order).SerializeToString()
    for sequence in (0, 5, 300):
        raw_bytes = signer.sign(b"/dydxprotocol.clob.MsgPlaceOrder", msg, sequence)
        raw = tx_pb2.TxRaw.FromString(raw_bytes)
        assert raw.SerializeToString(deterministic=True) == raw_bytes
        body, auth = tx_pb2.TxBody.FromString(raw.body_bytes), tx_pb2.AuthInfo.FromString(raw.auth_info_bytes)
        assert body.SerializeToString(deterministic=True) == raw.body_bytes
        assert auth.SerializeToString(deterministic=True) == raw.auth_info_bytes
        assert auth.signer_infos[0].sequence == sequence and auth.fee.gas_limit > 0 and not auth.fee.amount
        placed = clob_tx.MsgPlaceOrder()
        assert body.messages[0].Unpack(placed) and placed.order == order
        doc = tx_pb2.SignDoc(body_bytes=raw.body_bytes, auth_info_bytes=raw.auth_info_bytes,
                             chain_id="dydx-testnet-4", account_number=33).SerializeToString()  # fmt: skip
        sig = raw.signatures[0]
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        assert len(sig) == 64 and s <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
        assert verify_signature(TEST_PUBLIC_KEY, doc, r, s)
        assert not verify_signature(TEST_PUBLIC_KEY, doc + b"x", r, s)


# -- quantums and subticks ------------------------------------------------------------------------------
MARKETS = recorded_markets()
ETH, BTC = market_spec(MARKETS["ETH-USD"]), market_spec(MARKETS["BTC-USD"])
PEPE = market_spec(MARKETS["PEPE-USD"])  # atomicResolution +1: one step is 10,000,000 PEPE


def test_every_recorded_market_converts_consistently():
    for ticker, entry in MARKETS.items():
        spec = market_spec(entry)  # raises if tickSize/stepSize disagree with the integers
        assert spec.step_size == Decimal(entry["stepSize"]) and spec.tick_size == Decimal(entry["tickSize"])
        assert to_quantums(spec, spec.step_size) == spec.step_base_quantums, ticker
        assert to_subticks(spec, spec.tick_size) == spec.subticks_per_tick, ticker
    bad = dict(MARKETS["ETH-USD"], tickSize="0.01")
    with pytest.raises(ValueError, match="tickSize 0.01 disagrees"):
        market_spec(bad)


@pytest.mark.parametrize(
    ("spec", "size", "price", "quantums", "subticks"),
    [
        (ETH, 0.01, 3392.8, 10_000_000, 3_392_800_000),
        (ETH, 0.1 + 0.2, 3393.2000000000003, 300_000_000, 3_393_200_000),  # float noise lands on the grid
        (ETH, "0.001", "0.1", 1_000_000, 100_000),  # one step, one tick: the minimums
        (ETH, Decimal("123456.789"), Decimal("99999.9"), 123_456_789_000_000, 99_999_900_000),
        (BTC, 0.0001, 59655, 1_000_000, 5_965_500_000),
        (BTC, 1.0, 1e14, 10_000_000_000, 10**19),  # a price of 1e14 is 1e19 subticks, under 2^64
        (PEPE, 10_000_000, 0.0000123, 1_000_000, 123_000_000_000),
    ],
)
def test_sizes_and_prices_convert_exactly(spec, size, price, quantums, subticks):
    assert to_quantums(spec, size) == quantums
    assert to_subticks(spec, price) == subticks
    # Back from the integers: the decimal that was meant (a float's shortest repr, or the exact input).
    meant = {float: lambda v: Decimal(repr(v)), int: Decimal, str: Decimal, Decimal: lambda v: v}
    assert size_of(spec, quantums) == meant[type(size)](size) or size == 0.1 + 0.2
    assert price_of(spec, subticks) == meant[type(price)](price) or price == 3393.2000000000003


@pytest.mark.parametrize(
    ("spec", "size", "price", "message"),
    [
        (ETH, 0.0015, 3392.8, "size 0.0015 is not a multiple of the step size 0.001"),
        (ETH, 0.0005, 3392.8, "size 0.0005 is below the minimum, one step size: 0.001"),
        (ETH, "0.0010000000001", 3392.8, "not a multiple of the step size"),  # exact inputs: no tolerance
        (ETH, 0.01, 3392.85, "price 3392.85 is not a multiple of the tick size 0.1"),
        (ETH, 0.01, 0.05, "below the minimum, one tick size: 0.1"),
        (ETH, 0.01, 0.0, "price 0.0 must be positive"),
        (ETH, -0.01, 3392.8, "must be positive"),
        (ETH, float("nan"), 3392.8, "must be positive"),
        (ETH, 0.01, float("inf"), "must be positive"),
        (BTC, 0.0001, 2e14, "too large for an order"),
        (BTC, 2e9, 60000, "too large for an order"),
        (ETH, "abc", 3392.8, "not a number"),
    ],
)
def test_off_grid_too_small_and_too_large_are_refused(spec, size, price, message):
    with pytest.raises(GridError, match=re.escape(message)):
        to_quantums(spec, size)
        to_subticks(spec, price)


def test_a_float_within_tolerance_rounds_half_even_to_the_grid():
    assert to_quantums(ETH, 0.001 * 3) == 3_000_000  # 0.003 (0.0030000000000000001 in binary)
    # Within 1e-9 of a whole number of ticks, relative to that number (check_order's tolerance):
    # 33928 ticks +- 3.4e-5 tick.
    assert to_subticks(ETH, 3392.8 + 1e-9) == 3_392_800_000
    assert to_subticks(ETH, 3392.8 - 1e-6) == 3_392_800_000
    with pytest.raises(GridError):
        to_subticks(ETH, 3392.8 + 1e-5)


# -- fills and their fees ---------------------------------------------------------------------------------
class Reports:
    """A venue listener that keeps the reports."""

    def __init__(self) -> None:
        self.reports: list[ExecutionReport] = []

    def on_execution_report(self, report: ExecutionReport) -> None:
        self.reports.append(report)

    def on_venue_connected(self) -> None:
        pass

    def on_venue_disconnected(self, reason: str) -> None:
        pass


def venue_with_an_order(qty: str) -> tuple[DydxVenue, Reports, _Live]:
    """A venue (not running) holding one short-term ETH-USD buy of ``qty``, as ``send_new_order`` leaves it."""
    venue = DydxVenue(DydxVenueConfig(mnemonic=TEST_MNEMONIC))
    listener = Reports()
    venue._listener = listener
    live = _Live(Order(1, SYMBOL, Side.BUY, float(qty), 3392.8), ETH, to_quantums(ETH, qty), 77, 0)
    live.uuid = venue._order_id(77, ETH.clob_pair_id, 0)
    venue._orders[1] = live
    venue._by_uuid[live.uuid] = live
    return venue, listener, live


def indexer_fill(live: _Live, n: int, size: str, liquidity: str, **fee: str) -> dict:
    return {"id": f"fill-{n}", "orderId": live.uuid, "side": "BUY", "liquidity": liquidity, "type": "LIMIT",
            "price": "3392.8", "size": size, "createdAt": "2026-03-04T10:00:00.000Z", "createdAtHeight": "1000",
            **fee}  # fmt: skip


def test_indexer_fills_become_reports_with_the_fee_they_were_charged(monkeypatch):
    venue, listener, live = venue_with_an_order("0.01")
    stream = [
        indexer_fill(live, 1, "0.002", "TAKER", fee="0.003393"),
        indexer_fill(live, 2, "0.002", "MAKER", fee="-0.000746"),  # a maker rebate
        indexer_fill(live, 3, "0.002", "MAKER"),  # the field missing: the engine's rates apply
        indexer_fill(live, 4, "0.002", "MAKER", fee="n/a"),
    ]
    msg = {"type": "channel_data", "channel": "v4_subaccounts", "id": f"{TEST_ADDRESS}/0", "message_id": 3,
           "contents": {"fills": stream[:2], "blockHeight": "1000"}}  # fmt: skip
    venue._on_message(msg, 1)
    batch = {"type": "channel_batch_data", "channel": "v4_subaccounts", "id": f"{TEST_ADDRESS}/0", "message_id": 4,
             "contents": [{"fills": [stream[2]]}, {"fills": [stream[3]]}]}  # fmt: skip
    venue._on_message(batch, 2)

    # REST reconciliation (GET /v4/fills, newest first): the last fill, and a repeat that is not applied.
    async def rest(path: str, params: dict | None = None, missing_ok: bool = False) -> dict:
        assert path == "/v4/fills"
        return {"fills": [indexer_fill(live, 5, "0.002", "TAKER", fee="0.00339"), stream[0]]}

    monkeypatch.setattr(venue, "_get", rest)
    asyncio.run(venue._sync_fills())

    fills = listener.reports
    assert [(r.exec_type, r.last_qty, r.liquidity) for r in fills] == [
        (ExecType.PARTIAL_FILL, 0.002, 2), (ExecType.PARTIAL_FILL, 0.002, 1), (ExecType.PARTIAL_FILL, 0.002, 1),
        (ExecType.PARTIAL_FILL, 0.002, 1), (ExecType.FILL, 0.002, 2),
    ]  # fmt: skip
    assert [r.fee for r in fills] == [0.003393, -0.000746, None, None, 0.00339]
    assert venue.fills_without_fee == 2 and venue.duplicate_fills == 1


@pytest.mark.parametrize(
    ("raw", "fee"),
    [("0.006784", 0.006784), ("-0.002238", -0.002238), ("0", 0.0), (0.5, 0.5), ("1e-6", 1e-6),
     (None, None), ("", None), ("abc", None), ("NaN", None), ("-Infinity", None), ({"amount": "1"}, None)],
)  # fmt: skip
def test_a_fee_that_is_not_a_finite_number_is_none(raw, fee):
    assert _fill_fee(raw) == fee


# -- config -------------------------------------------------------------------------------------------------
def test_config_defaults_overrides_and_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv("DYDX_MNEMONIC", raising=False)
    cfg = DydxVenueConfig(mnemonic=TEST_MNEMONIC)
    ep = cfg.endpoints()
    assert (cfg.network, ep.chain_id, ep.node_grpc_url) == (
        "testnet",
        "dydx-testnet-4",
        "oegs-testnet.dydx.exchange:443",
    )
    assert ep.indexer_ws_url == "wss://indexer.v4testnet.dydx.exchange/v4/ws"
    main = DydxVenueConfig(mnemonic=TEST_MNEMONIC, network="mainnet").endpoints()
    assert (main.chain_id, main.indexer_rest_url) == ("dydx-mainnet-1", "https://indexer.dydx.trade")
    assert grpc_target("grpc://127.0.0.1:9090") == ("127.0.0.1:9090", False)
    assert grpc_target("https://dydx-grpc.publicnode.com") == ("dydx-grpc.publicnode.com:443", True)
    assert grpc_target("oegs.dydx.trade:443") == ("oegs.dydx.trade:443", True)
    with pytest.raises(ConfigError, match="venue.unknown_key: "):
        validate(DydxVenueConfig, {"mnemonic": TEST_MNEMONIC, "unknown_key": 1}, prefix="venue")
    with pytest.raises(ConfigError, match="venue.node_grpc_url: .*ftp://x"):
        validate(DydxVenueConfig, {"mnemonic": TEST_MNEMONIC, "node_grpc_url": "ftp://x:1"}, prefix="venue")
    with pytest.raises(ConfigError, match="venue.network: "):
        validate(DydxVenueConfig, {"mnemonic": TEST_MNEMONIC, "network": "devnet"}, prefix="venue")
    # The mnemonic: config, else $DYDX_MNEMONIC, else mnemonic_file; none: one line saying where to put it.
    with pytest.raises(ConfigError) as err:
        validate(DydxVenueConfig, {}, "live.yml", prefix="venue")
    assert str(err.value) == (
        "live.yml: venue: missing mnemonic: set DYDX_MNEMONIC, or mnemonic / mnemonic_file in the venue config"
    )
    monkeypatch.setenv("DYDX_MNEMONIC", TEST_MNEMONIC)
    assert DydxVenueConfig().mnemonic_value() == TEST_MNEMONIC
    monkeypatch.delenv("DYDX_MNEMONIC")
    path = tmp_path / "mnemonic.txt"
    path.write_text(TEST_MNEMONIC + "\n")
    assert DydxVenueConfig(mnemonic_file=path).mnemonic_value() == TEST_MNEMONIC


def test_the_mnemonic_never_shows_in_reprs_dumps_or_errors(monkeypatch):
    words = TEST_MNEMONIC.split()
    # (pydantic shortens a long input in its messages: its first and last words would still show)
    secret_bits = [TEST_MNEMONIC, " ".join(words[:2]), " ".join(words[-2:]), TEST_PRIVATE_KEY_HEX]
    cfg = DydxVenueConfig(mnemonic=TEST_MNEMONIC)
    shown = [repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.model_dump()), repr(cfg.mnemonic)]
    with pytest.raises(ConfigError) as err:  # another key wrong: the error names it, not the mnemonic
        validate(DydxVenueConfig, {"mnemonic": TEST_MNEMONIC, "subaccount": -1, "post_only": "maybe"})
    shown.append(str(err.value))
    with pytest.raises(ConfigError) as err:  # the mnemonic itself of a wrong type
        validate(DydxVenueConfig, {"mnemonic": words})
    shown.append(str(err.value))
    # pydantic's own message, for code that builds the model directly: a check of the whole model (here
    # the trade extra missing, as in an install without it) would print every key it was given
    monkeypatch.setattr(dydx_config, "missing_trade_modules", lambda: ["grpc"])
    with pytest.raises(ValidationError) as exc:
        DydxVenueConfig(mnemonic=TEST_MNEMONIC)
    assert "trade extra" in str(exc.value)
    shown.append(str(exc.value))
    assert isinstance(cfg.mnemonic, SecretStr)
    for text in shown:
        assert not any(bit in text for bit in secret_bits), text


def test_without_the_trade_extra_the_feed_works_and_the_venue_says_how_to_install():
    """In a fresh interpreter where grpc, v4_proto and coincurve cannot be imported."""
    script = textwrap.dedent(
        """
        import sys
        for name in ("grpc", "v4_proto", "coincurve"):
            sys.modules[name] = None  # import fails as if not installed
        from latentspeed_core.config import ConfigError
        from latentspeed_core.engine.config import resolve
        from latentspeed_core.plugins import load_registry
        reg = load_registry(["dydx", "examples"])
        feed = reg.get("feeds", "dydx")
        cfg = feed.config_model(exchange="dydx", symbols=["ETH-USD"], ws_url="ws://127.0.0.1:1/v4/ws")
        feed.factory(cfg)  # the feed builds without the extra
        try:
            resolve({"market_data": {"feeds": [{"exchange": "dydx", "symbols": ["ETH-USD"]}]},
                     "venue": {"exchange": "dydx", "mnemonic": "x"},
                     "strategies": [{"name": "market_maker", "symbols": ["ETH-USD"]}]}, reg, "live.yml")
        except ConfigError as exc:
            print(exc)
        assert "grpc" not in sys.modules or sys.modules["grpc"] is None
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "live.yml: venue: dYdX order entry needs the trade extra (missing grpc, v4_proto, "
        "coincurve): pip install 'latentspeed-exchange-dydx[trade]'"
    )


# -- the engine on the emulated chain -----------------------------------------------------------------------
class NoParams(StrictModel):
    pass


class Manual(Strategy):
    """Does nothing by itself: the test decides every order (``engine.submit("manual", ...)``)."""


class KitPlugin:
    __name__ = "dydx_execution_kit"

    @staticmethod
    @hookimpl
    def register_strategies(register):
        register(Component("manual", NoParams, Manual))


def engine_config(emu: ChainEmulator, feed_url: str, strategy: str = "manual", params: dict | None = None,
                  **venue) -> dict:  # fmt: skip
    return {
        "market_data": {"startup_timeout": 20, "feeds": [
            {"exchange": "dydx", "symbols": [SYMBOL], "ws_url": feed_url, "trades": False}]},
        "venue": emu.venue_config(**venue),
        "strategies": [{"name": strategy, "symbols": [SYMBOL], "params": params or {}}],
        "risk": {"max_order_qty": 1.0, "max_notional": 50_000, "max_position": 1.0, "price_band_bps": 100,
                 "max_orders_per_second": 100, "max_open_orders": 20},
        "fees": {"maker_bps": 1.0, "taker_bps": 5.0},
        "latency": {"file": None},
        "stats_interval": 60,
        "shutdown_timeout": 5,
    }  # fmt: skip


@contextlib.asynccontextmanager
async def engine_on(kit, emu: ChainEmulator, feed, config: dict):
    """An ``EngineRunner`` trading on ``emu``; yielded once the venue is connected and the recorded
    ETH-USD book has reached the engine. Stopped on exit (its summary in ``runner.summary``)."""
    reg = load_registry(["dydx", "examples"], extra=[KitPlugin()])
    runner = EngineRunner(resolve(config, reg), reg)
    task = asyncio.create_task(runner.run(install_signals=False))
    try:
        conn = await feed.connection(timeout=20)
        await conn.subscriptions(1)
        await async_wait_for(lambda: runner.venue.connected or task.done(), 20, "the dydx venue to connect")
        if task.done():
            task.result()
        await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))  # after the venue is up: strategies act on it
        await async_wait_for(lambda: runner.engine.mid(SYMBOL) is not None, 20, "the book at the engine")
        yield runner
    finally:
        runner.stop("test done")
        await asyncio.wait_for(task, 30)


def statuses(engine) -> dict[int, OrderStatus]:
    return {cid: st.status for cid, st in engine.orders.orders.items()}


def test_market_maker_quotes_gets_filled_once_and_positions_follow(kit, caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            params = {
                "qty": QTY,
                "half_spread_bps": 1.5,
                "skew_bps": 0,
                "requote_bps": 50,
                "max_position": 0.05,
            }
            async with engine_on(
                kit, emu, feed, engine_config(emu, feed.url, "market_maker", params)
            ) as runner:
                engine, venue = runner.engine, runner.venue
                await async_wait_for(
                    lambda: len(emu.open_orders()) == 2, 20, "a bid and an ask at the validator"
                )
                await async_wait_for(lambda: sum(st.status == OrderStatus.NEW for st in engine.orders.open.values()) == 2,
                                     20, "both quotes acknowledged (NEW)")  # fmt: skip
                # What the validator decoded: exact quantums and subticks, our client ids, good-til-block,
                # short-term (no sequence use: the account's sequence is unchanged), signatures verified.
                bid_tx, ask_tx = sorted(emu.placed(), key=lambda t: t.side)
                mid = (3393.2 + 3393.5) / 2
                assert (bid_tx.side, bid_tx.quantums, bid_tx.subticks) == (1, 10_000_000, 3_392_800_000)
                assert (ask_tx.side, ask_tx.quantums, ask_tx.subticks) == (2, 10_000_000, 3_393_900_000)
                assert 3392.8 < mid * (1 - 1.5e-4) < 3392.9 and 3393.8 < mid * (1 + 1.5e-4) < 3393.9
                assert {t.flags for t in (bid_tx, ask_tx)} == {0} and emu.sequence == 5
                assert bid_tx.gtb == ask_tx.gtb == emu.height + 20
                by_side = {st.side: st for st in engine.orders.open.values()}
                assert bid_tx.client_id == (venue._cid_base + by_side[Side.BUY].cl_ord_id) & 0xFFFFFFFF
                assert [t for t in emu.txs if t.code] == []

                bid = next(o for o in emu.open_orders() if o.side == "BUY")
                first = emu.fill(bid, "0.004", liquidity="MAKER")
                await async_wait_for(lambda: engine.fills == 1, 15, "the first fill")
                emu.fill(bid, liquidity="MAKER")  # the rest: 0.006
                await async_wait_for(lambda: engine.fills == 2, 15, "the second fill")
                emu.push({"fills": [first]})  # the indexer repeats a fill: counted once
                await async_wait_for(lambda: venue.duplicate_fills == 1, 15, "the repeat seen")
                pos = engine.portfolio.get(SYMBOL)
                assert pos.qty == pytest.approx(QTY) and pos.avg_price == pytest.approx(3392.8)
                # The fees the indexer reported (maker, 1 bps rounded up to a USDC quantum), not the config's.
                assert pos.fees == pytest.approx(0.001358 + 0.002036)
                assert [f.fee for f in engine.recent_fills] == pytest.approx([0.001358, 0.002036])
                assert engine.recent_fills[-1].liquidity == 1
                st = engine.orders.orders[by_side[Side.BUY].cl_ord_id]
                assert st.status == OrderStatus.FILLED and st.filled_qty == pytest.approx(QTY)
            summary = runner.summary
            assert summary["fills"] == 2 and summary["positions"] == {SYMBOL: pytest.approx(QTY)}
            assert summary["unknown_orders"] == 0 and summary["venue_rejects"] == 0
            # cancel_on_exit: the ask was cancelled with a short-term MsgCancelOrder, confirmed by the indexer.
            cancels = [t for t in emu.txs if t.kind == "cancel"]
            assert cancels and all(t.code == 0 and t.flags == 0 for t in cancels)
            assert not emu.open_orders()

    run(main())
    text = caplog.text
    assert "dydx" in text
    for secret in (TEST_MNEMONIC, " ".join(TEST_MNEMONIC.split()[:3]), TEST_PRIVATE_KEY_HEX):
        assert secret not in text


def test_short_term_orders_past_their_block_are_reported_canceled(kit):
    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            async with engine_on(kit, emu, feed, engine_config(emu, feed.url, good_til_blocks=5)) as runner:
                engine = runner.engine
                st = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3390.0)
                await async_wait_for(lambda: st.status == OrderStatus.NEW, 15, "the order acknowledged")
                assert emu.placed()[0].gtb == emu.height + 5
                emu.advance(5)
                assert st.status == OrderStatus.NEW  # good until block height + 5 inclusive
                emu.advance(1)
                await async_wait_for(lambda: st.status == OrderStatus.CANCELED, 15, "the expiry reported")
                # An IOC order is short-term even when long-term orders are configured elsewhere.
                ioc = engine.submit("manual", SYMBOL, Side.SELL, QTY, 3393.2, tif=TimeInForce.IOC)
                await async_wait_for(lambda: ioc.status == OrderStatus.NEW, 15, "the IOC acknowledged")
                assert emu.placed()[-1].tif == order_pb2.Order.TIME_IN_FORCE_IOC
                # a post-only order: the chain's POST_ONLY, for that order alone
                post = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3380.0, tif=TimeInForce.POST_ONLY)
                await async_wait_for(lambda: post.status == OrderStatus.NEW, 15, "the post-only acknowledged")
                assert emu.placed()[-1].tif == order_pb2.Order.TIME_IN_FORCE_POST_ONLY
                assert emu.placed()[0].tif != order_pb2.Order.TIME_IN_FORCE_POST_ONLY

    run(main())


def test_refused_orders_never_reach_the_validator_and_validator_refusals_are_rejects(kit):
    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            async with engine_on(kit, emu, feed, engine_config(emu, feed.url)) as runner:
                engine = runner.engine
                assert engine.submit("manual", SYMBOL, Side.BUY, QTY, 3392.85) is None
                assert "not a multiple of the tick size" in engine.last_reject
                assert engine.submit("manual", SYMBOL, Side.BUY, 0.0005, 3392.8) is None
                assert "quantity 0.0005" in engine.last_reject
                assert engine.submit("manual", "FOO-USD", Side.BUY, QTY, 1.0) is None
                assert engine.risk_rejects == 3 and emu.txs == []
                # The validator's grid differs from the indexer's (a market changed): CheckTx refuses.
                emu._by_clob[1] = dict(emu._by_clob[1], stepBaseQuantums=3_000_000)
                st = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3392.8)
                await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 15, "the validator's refusal")
                assert st.reject_reason == RejectReason.INVALID_QUANTITY
                assert engine.venue_rejects == 1 and emu.txs[-1].code == 4 and emu.txs[-1].codespace == "clob"

    run(main())


def test_a_sequence_mismatch_resyncs_and_stateful_orders_never_collide(kit):
    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            cfg = engine_config(emu, feed.url, order_kind="long_term", good_til_seconds=3600)
            async with engine_on(kit, emu, feed, cfg) as runner:
                engine, venue = runner.engine, runner.venue
                first = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3380.0)
                await async_wait_for(lambda: first.status == OrderStatus.NEW, 15, "the first order")
                assert [(t.sequence, t.code, t.flags) for t in emu.txs] == [(5, 0, 64)]
                assert emu.txs[0].gtbt > 0 and emu.txs[0].gtb == 0
                emu.bump_sequence(2)  # another client of this account sent two transactions
                second = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3381.0)
                # The order's NEW may come from the indexer's stream before the broadcast's answer
                # (which moves the venue's sequence on) is read: wait for both.
                await async_wait_for(
                    lambda: second.status == OrderStatus.NEW and venue.sequence == emu.sequence, 15,
                    "the second order after a resync",
                )  # fmt: skip
                assert [(t.sequence, t.code) for t in emu.txs[1:]] == [(6, 32), (8, 0)]
                assert venue.sequence_resyncs == 1 and venue.sequence == emu.sequence == 9
                # A burst: each stateful transaction gets the next sequence, none collides.
                burst = [engine.submit("manual", SYMBOL, Side.SELL, QTY, 3400.0 + i) for i in range(5)]
                await async_wait_for(
                    lambda: all(st.status == OrderStatus.NEW for st in burst), 20, "the burst"
                )
                assert [(t.sequence, t.code) for t in emu.txs[3:]] == [(9 + i, 0) for i in range(5)]
                assert engine.cancel(first.cl_ord_id)
                await async_wait_for(lambda: first.status == OrderStatus.CANCELED, 15, "the stateful cancel")
                cancel = emu.txs[-1]
                assert (cancel.kind, cancel.flags, cancel.sequence, cancel.code) == ("cancel", 64, 14, 0)
                assert engine.venue_rejects == 0

    run(main())


def test_a_dropped_stream_reconciles_every_order_and_counts_fills_once(kit):
    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            async with engine_on(kit, emu, feed, engine_config(emu, feed.url)) as runner:
                engine, venue = runner.engine, runner.venue
                a = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3392.0)
                b = engine.submit("manual", SYMBOL, Side.SELL, QTY, 3395.0)
                c = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3391.0)
                await async_wait_for(lambda: len(emu.open_orders()) == 3 and engine.orders.open
                                     and all(st.status == OrderStatus.NEW for st in (a, b, c)), 15, "three orders")  # fmt: skip
                ea, eb, _ec = (
                    next(o for o in emu.orders.values() if o.price == Decimal(p)) for p in (3392, 3395, 3391)
                )
                emu.fill(ea, "0.004", liquidity="TAKER")
                await async_wait_for(lambda: engine.fills == 1, 15, "the first fill")

                emu.offline = True  # the stream drops and stays down a while
                await emu.drop()
                await async_wait_for(lambda: not venue.connected, 15, "the venue to see the drop")
                assert {a.status, b.status, c.status} == {UNKNOWN} and engine.unknown_orders == 3
                await async_wait_for(
                    lambda: emu.ws_refused >= 2, 15, "reconnects refused while the stream is down"
                )
                emu.fill(ea)  # meanwhile: the rest of A fills, B is cancelled at the venue, C rests
                emu.cancel_at_venue(eb)
                reconciled = venue.reconciliations
                emu.offline = False
                await async_wait_for(lambda: venue.connected and venue.reconciliations > reconciled, 20,
                                     "reconnected and reconciled")  # fmt: skip
                assert (a.status, b.status, c.status) == (
                    OrderStatus.FILLED,
                    OrderStatus.CANCELED,
                    OrderStatus.NEW,
                )
                assert engine.fills == 2 and a.filled_qty == pytest.approx(QTY)
                assert engine.portfolio.get(SYMBOL).qty == pytest.approx(QTY)
                assert venue.duplicate_fills == 1  # REST returned the first fill again: not applied twice
                assert any(p.startswith("/v4/fills?") for p in emu.rest_requests)
                assert f"/v4/orders/{eb.id}" in emu.rest_requests
                assert not any(st.status == UNKNOWN for st in engine.orders.orders.values())
                # Trading goes on; a fill repeated on the new stream changes nothing.
                emu.push({"fills": [{**emu.fills[0], "subaccountId": emu.subaccount_id, "ticker": SYMBOL}]})
                d = engine.submit("manual", SYMBOL, Side.SELL, QTY, 3396.0)
                await async_wait_for(
                    lambda: d.status == OrderStatus.NEW, 15, "a new order after the reconnect"
                )
                assert engine.fills == 2 and venue.duplicate_fills == 2
            assert runner.summary["fills"] == 2

    run(main())


def test_fills_are_charged_the_fees_the_indexer_reports_not_the_configured_rates(kit):
    async def main():
        # A maker rebate of 1.1 bps (dYdX's top tiers), and engine rates that differ from both.
        async with ChainEmulator(maker_fee_ppm=-110, taker_fee_ppm=500) as emu, kit.IndexerServer() as feed:
            config = {**engine_config(emu, feed.url), "fees": {"maker_bps": 3.0, "taker_bps": 9.0}}
            async with engine_on(kit, emu, feed, config) as runner:
                engine, venue = runner.engine, runner.venue
                a = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3392.0)
                b = engine.submit("manual", SYMBOL, Side.SELL, QTY, 3395.0)
                await async_wait_for(
                    lambda: a.status == b.status == OrderStatus.NEW, 15, "both orders acknowledged"
                )
                ea, eb = (next(o for o in emu.orders.values() if o.price == Decimal(p)) for p in (3392, 3395))
                emu.fill(ea, "0.004", liquidity="TAKER")  # 13.568 USDC x 500 ppm = 0.006784
                await async_wait_for(lambda: engine.fills == 1, 15, "the taker fill")
                emu.fill(ea, liquidity="MAKER")  # 20.352 USDC x -110 ppm = -0.00223872, up: -0.002238
                await async_wait_for(lambda: engine.fills == 2, 15, "the maker fill")
                # A fill while the stream is down comes back from REST (GET /v4/fills), its fee with it.
                emu.offline = True
                await emu.drop()
                await async_wait_for(lambda: not venue.connected, 15, "the venue to see the drop")
                emu.fill(eb, liquidity="TAKER")  # 33.95 USDC x 500 ppm = 0.016975
                reconciled = venue.reconciliations
                emu.offline = False
                await async_wait_for(lambda: venue.connected and venue.reconciliations > reconciled
                                     and engine.fills == 3, 20, "the missed fill reconciled")  # fmt: skip
                assert [f["fee"] for f in emu.fills] == ["0.006784", "-0.002238", "0.016975"]
                assert [f.fee for f in engine.recent_fills] == pytest.approx([0.006784, -0.002238, 0.016975])
                assert [f.liquidity for f in engine.recent_fills] == [2, 1, 2]
                pos = engine.portfolio.get(SYMBOL)
                assert pos.qty == pytest.approx(0.0)
                assert pos.fees == pytest.approx(0.006784 - 0.002238 + 0.016975)
                assert venue.fills_without_fee == 0

    run(main())


def test_unanswered_broadcasts_are_settled_from_the_indexer(kit):
    async def main():
        async with ChainEmulator() as emu, kit.IndexerServer() as feed:
            async with engine_on(kit, emu, feed, engine_config(emu, feed.url, good_til_blocks=3)) as runner:
                engine, venue = runner.engine, runner.venue
                # No answer to a placement: it may or may not be on the book, so it stays pending until
                # its last block has passed; then the indexer has never heard of it: canceled.
                emu.fail_broadcasts = 1
                lost = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3390.0)
                await async_wait_for(lambda: emu.fail_broadcasts == 0, 15, "the broadcast attempted")
                assert lost.status == OrderStatus.PENDING_NEW and emu.txs == []
                emu.advance(5)  # good-til-block + the grace blocks
                assert lost.status == OrderStatus.PENDING_NEW
                emu.advance(1)
                await async_wait_for(
                    lambda: lost.status == OrderStatus.CANCELED, 15, "the lost order settled"
                )
                assert f"/v4/orders/{venue._orders[lost.cl_ord_id].uuid}" in emu.rest_requests
                # No answer to a cancel: reported refused, so the strategy may cancel again.
                st = engine.submit("manual", SYMBOL, Side.BUY, QTY, 3390.0)
                await async_wait_for(lambda: st.status == OrderStatus.NEW, 15, "the order acknowledged")
                emu.fail_broadcasts = 1
                assert engine.cancel(st.cl_ord_id)
                await async_wait_for(lambda: engine.orders.cancel_rejects == 1, 15, "the cancel refused")
                assert st.status == OrderStatus.NEW and not st.cancel_pending
                assert engine.cancel(st.cl_ord_id)
                await async_wait_for(lambda: st.status == OrderStatus.CANCELED, 15, "the second cancel")

    run(main())


@pytest.mark.parametrize(
    ("emulated", "error"),
    [
        ({"address": "dydx1slanxj8x9ntk9knwa6cvfv2tzlsq5gk3dshml0"},
         f"dydx: account {TEST_ADDRESS} does not exist on testnet (a different mnemonic, or an address never funded)"),
        ({"chain_id": "dydx-mainnet-1"},
         "dydx: node {url} is on chain 'dydx-mainnet-1', not 'dydx-testnet-4' (testnet); check network / node_grpc_url"),
    ],
)  # fmt: skip
def test_a_wrong_chain_or_unknown_account_stops_with_one_clear_line(kit, emulated, error):
    async def main():
        async with ChainEmulator(**emulated) as emu, kit.IndexerServer() as feed:
            reg = load_registry(["dydx", "examples"], extra=[KitPlugin()])
            runner = EngineRunner(resolve(engine_config(emu, feed.url), reg), reg)
            summary = await asyncio.wait_for(runner.run(install_signals=False), 30)
            return summary, emu.node_grpc_url

    summary, url = run(main())
    assert summary["error"] == "task venue failed: DydxSetupError: " + error.format(url=url)


def test_venue_repr_and_state_hold_no_secret():
    venue_cfg = DydxVenueConfig(mnemonic=TEST_MNEMONIC)
    from latentspeed_exchange_dydx.execution import DydxVenue

    venue = DydxVenue(venue_cfg)
    text = repr(venue) + repr(venue.wallet) + json.dumps({k: repr(v) for k, v in vars(venue).items()})
    assert TEST_ADDRESS in repr(venue)
    assert TEST_MNEMONIC not in text and TEST_PRIVATE_KEY_HEX not in text and "mirror actor" not in text
