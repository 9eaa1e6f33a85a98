"""A loopback emulator of the dYdX v4 pieces the ``dydx`` venue talks to.

- **Validator** (a real gRPC server, the services generated from ``v4-proto``):
  ``cosmos.tx.v1beta1.Service/BroadcastTx``, ``cosmos.auth.v1beta1.Query/Account``,
  ``cosmos.base.tendermint.v1beta1.Service/GetLatestBlock``. Every broadcast transaction is decoded
  and checked as the chain's ante handler would: canonical encoding (re-serialises to the same
  bytes), exactly one message, the signer's public key is the test wallet's (the official clients'
  published test key, not derived here), the signature verifies over the SignDoc with an ECDSA
  implementation independent of the venue's (``cryptography``, not libsecp256k1) and is low-S, the
  sequence matches for stateful transactions only, and the order's content is checked: owner and
  subaccount, clob pair, quantums a positive multiple of stepBaseQuantums, subticks a positive
  multiple of subticksPerTick, good-til-block within the short block window.
- **Indexer**: REST (``/v4/perpetualMarkets`` from a recorded indexer payload, ``/v4/height``,
  ``/v4/orders``, ``/v4/orders/{id}``, ``/v4/fills``) and the WebSocket (``v4_subaccounts`` with
  order and fill updates in the recorded message shapes, ``v4_block_height``) on one port.

Fees: each fill carries the ``fee`` the chain would charge (``maker_fee_ppm``/``taker_fee_ppm`` of
its quote amount, rounded up to a USDC quantum as ``process_single_match.go`` does; negative: a
rebate), on the stream and in REST alike.

Not emulated: matching (the test decides fills with :meth:`ChainEmulator.fill`), gas, fee tiers,
collateral, block production (the test advances the height with :meth:`ChainEmulator.advance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

import grpc
import grpc.aio
from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_grpc
from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
from v4_proto.cosmos.tx.signing.v1beta1 import signing_pb2
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc
from v4_proto.cosmos.tx.v1beta1 import tx_pb2
from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from latentspeed_core.testing import fixtures_dir

# The official clients' test wallet (dydxprotocol/v4-clients, v4-client-py-v2/tests/conftest.py).
TEST_MNEMONIC = (
    "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake "
    "miracle matter bus reopen team ladder lazy list timber render wait"
)
TEST_ADDRESS = "dydx14zzueazeh0hj67cghhf9jypslcf9sh2n5k6art"
TEST_PUBLIC_KEY = bytes.fromhex("03f0be763f781b5b59ebc37d721beda913148a539425baa720b97d4820f652ed75")
TEST_PRIVATE_KEY_HEX = "e92a6595c934c991d3b3e987ea9b3125bf61a076deab3a9cb519787b7b3e8d77"
CHAIN_ID = "dydx-testnet-4"
#: A recorded indexer payload with every market's grid (the same fields as /v4/perpetualMarkets).
MARKETS_FIXTURE = "ws_v4_markets_subscribed_all_markets_nautilus.json"
NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SHORT_BLOCK_WINDOW = 20


def recorded_markets() -> dict[str, dict]:
    return json.loads((fixtures_dir() / "dydx" / MARKETS_FIXTURE).read_text())["contents"]["markets"]


def _dec(d: Decimal) -> str:
    """A decimal as the indexer writes it: ``0.01``, ``3392.8``, ``10``."""
    return f"{d.normalize():f}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass
class EmuOrder:
    """An order as the indexer knows it."""

    id: str
    client_id: int
    clob_pair_id: int
    flags: int
    ticker: str
    side: str
    size: Decimal
    price: Decimal
    quantums: int
    subticks: int
    tif: int
    gtb: int = 0
    gtbt: int = 0
    status: str = "OPEN"
    filled: Decimal = Decimal(0)
    created_height: int = 0
    removal_reason: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("OPEN", "BEST_EFFORT_OPENED")

    def ws(self, subaccount_id: str) -> dict:
        """The ``v4_subaccounts`` order object (recorded field names)."""
        d = {
            "id": self.id, "subaccountId": subaccount_id, "clientId": str(self.client_id),
            "clobPairId": str(self.clob_pair_id), "side": self.side, "size": _dec(self.size),
            "ticker": self.ticker, "price": _dec(self.price), "type": "LIMIT",
            "timeInForce": {1: "IOC", 2: "POST_ONLY"}.get(self.tif, "GTT"), "postOnly": self.tif == 2,
            "reduceOnly": False, "status": self.status, "orderFlags": str(self.flags),
            "totalFilled": _dec(self.filled), "goodTilBlock": str(self.gtb) if self.gtb else None,
            "goodTilBlockTime": _iso(self.gtbt) if self.gtbt else None, "clientMetadata": "0",
            "createdAtHeight": str(self.created_height),
        }  # fmt: skip
        if self.removal_reason:
            d["removalReason"] = self.removal_reason
        return d

    def rest(self, subaccount_id: str) -> dict:
        d = self.ws(subaccount_id)
        d["subaccountNumber"] = 0
        return d


@dataclass
class Decoded:
    """A transaction the validator accepted or refused, decoded (what the tests assert on)."""

    kind: str  # "place" | "cancel"
    sequence: int
    client_id: int
    flags: int
    clob_pair_id: int
    quantums: int = 0
    subticks: int = 0
    side: int = 0
    tif: int = 0
    gtb: int = 0
    gtbt: int = 0
    code: int = 0
    codespace: str = ""
    raw_log: str = ""


@dataclass
class ChainEmulator:
    address: str = TEST_ADDRESS
    public_key: bytes = TEST_PUBLIC_KEY
    subaccount: int = 0
    account_number: int = 33
    sequence: int = 5
    height: int = 1_000
    markets: dict[str, dict] = field(default_factory=recorded_markets)
    chain_id: str = CHAIN_ID
    #: Every transaction broadcast, in order, accepted (code 0) or not.
    txs: list[Decoded] = field(default_factory=list)
    orders: dict[str, EmuOrder] = field(default_factory=dict)
    #: REST fill objects, oldest first.
    fills: list[dict] = field(default_factory=list)
    #: REST paths requested, in order.
    rest_requests: list[str] = field(default_factory=list)
    #: True: the WebSocket endpoint refuses connections (HTTP 503), the stream is "down".
    offline: bool = False
    #: Broadcasts to fail with gRPC UNAVAILABLE before looking at them (an answer lost on the way).
    fail_broadcasts: int = 0
    #: Fee rates in parts per million of the fill's quote amount; the chain's default tier 1
    #: (x/feetiers/types/genesis.go StandardParams). Negative maker rates are rebates.
    maker_fee_ppm: int = 100
    taker_fee_ppm: int = 500

    def __post_init__(self) -> None:
        self.subaccount_id = str(uuid.uuid5(NAMESPACE, f"{self.address}-{self.subaccount}"))
        self._by_clob = {int(m["clobPairId"]): m for m in self.markets.values()}
        self._subs: list[Any] = []
        self._height_subs: list[Any] = []
        self._next_id: dict[int, int] = {}
        self._fill_no = 0
        self.ws_connections = 0
        #: WebSocket connections refused while ``offline``.
        self.ws_refused = 0

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> ChainEmulator:
        self._grpc = grpc.aio.server()
        tx_grpc.add_ServiceServicer_to_server(_TxService(self), self._grpc)
        auth_grpc.add_QueryServicer_to_server(_AuthQuery(self), self._grpc)
        tm_grpc.add_ServiceServicer_to_server(_Tendermint(self), self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        await self._grpc.start()
        self._http = await serve(self._ws_handler, "127.0.0.1", 0, process_request=self._process_request)
        port = self._http.sockets[0].getsockname()[1]
        self.node_grpc_url = f"grpc://127.0.0.1:{grpc_port}"
        self.indexer_rest_url = f"http://127.0.0.1:{port}"
        self.indexer_ws_url = f"ws://127.0.0.1:{port}/v4/ws"
        return self

    async def __aexit__(self, *exc) -> None:
        self._http.close()
        await self._http.wait_closed()
        await self._grpc.stop(None)

    def venue_config(self, **extra: Any) -> dict:
        return {
            "exchange": "dydx", "network": "testnet", "mnemonic": TEST_MNEMONIC, "subaccount": self.subaccount,
            "node_grpc_url": self.node_grpc_url, "indexer_rest_url": self.indexer_rest_url,
            "indexer_ws_url": self.indexer_ws_url, "backoff_initial": 0.02, "backoff_max": 0.1,
            "connect_timeout": 5, **extra,
        }  # fmt: skip

    # -- test controls ---------------------------------------------------------------------------
    def order_id(self, client_id: int, clob_pair_id: int, flags: int) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.subaccount_id}-{client_id}-{clob_pair_id}-{flags}"))

    def open_orders(self) -> list[EmuOrder]:
        return [o for o in self.orders.values() if o.open]

    def placed(self) -> list[Decoded]:
        return [t for t in self.txs if t.kind == "place" and t.code == 0]

    def advance(self, blocks: int = 1) -> None:
        """New blocks: height pushed on v4_block_height; short-term orders past their block expire."""
        for _ in range(blocks):
            self.height += 1
            self._send(self._height_subs, "v4_block_height", "v4_block_height",
                       {"blockHeight": str(self.height), "time": _iso(time.time())})  # fmt: skip
            expired = [o for o in self.orders.values() if o.open and o.flags == 0 and o.gtb < self.height]
            for o in expired:
                o.status, o.removal_reason = "CANCELED", "ORDER_REMOVAL_REASON_EXPIRED"
            if expired:
                self.push({"orders": [o.ws(self.subaccount_id) for o in expired]})

    def fee(self, size: Decimal, price: Decimal, liquidity: str) -> Decimal:
        """The fee the chain charges for a fill: ppm of the quote amount, rounded up to 1e-6 USDC."""
        ppm = self.taker_fee_ppm if liquidity == "TAKER" else self.maker_fee_ppm
        return (size * price * ppm / 1_000_000).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)

    def fill(self, order: EmuOrder, size: Decimal | str | None = None, price: Decimal | str | None = None,
             liquidity: str = "MAKER") -> dict:  # fmt: skip
        """A fill of ``order`` (all that is left by default, at its price by default), stored for REST and
        pushed on the stream (fills first, then the order, as the indexer does in one message)."""
        size = Decimal(size) if size is not None else order.size - order.filled
        price = Decimal(price) if price is not None else order.price
        assert order.open and Decimal(0) < size <= order.size - order.filled
        self._fill_no += 1
        order.filled += size
        if order.filled == order.size:
            order.status = "FILLED"
        now = time.time()
        # The stream's fill is the stored fill row spread into the message (ender's kafka-helper.ts
        # generateFillSubaccountMessage), so it carries the same fee as REST's, though the documented
        # FillSubaccountMessageContents type omits it.
        common = {
            "id": str(uuid.uuid5(NAMESPACE, f"fill-{self._fill_no}")), "side": order.side, "liquidity": liquidity,
            "type": "LIMIT", "price": _dec(price), "size": _dec(size), "createdAt": _iso(now),
            "createdAtHeight": str(self.height), "orderId": order.id, "clientMetadata": "0",
            "fee": _dec(self.fee(size, price, liquidity)), "affiliateRevShare": "0",
        }  # fmt: skip
        rest = {
            **common,
            "market": order.ticker,
            "marketType": "PERPETUAL",
            "subaccountNumber": 0,
        }
        self.fills.append(rest)
        ws = {**common, "subaccountId": self.subaccount_id, "clobPairId": str(order.clob_pair_id),
              "ticker": order.ticker, "quoteAmount": _dec(size * price), "eventId": f"{self._fill_no:024x}",
              "transactionHash": hashlib.sha256(str(now).encode()).hexdigest().upper()}  # fmt: skip
        self.push({"fills": [ws], "orders": [order.ws(self.subaccount_id)], "blockHeight": str(self.height)})
        return ws

    def cancel_at_venue(self, order: EmuOrder, reason: str = "ORDER_REMOVAL_REASON_USER_CANCELED") -> None:
        order.status, order.removal_reason = "CANCELED", reason
        self.push({"orders": [order.ws(self.subaccount_id)]})

    def push(self, contents: dict) -> None:
        """A ``v4_subaccounts`` update to every subscriber (lost if none is connected)."""
        self._send(self._subs, "v4_subaccounts", f"{self.address}/{self.subaccount}", contents)

    async def drop(self) -> None:
        """Close every indexer WebSocket connection (the stream drops)."""
        for ws in list({*self._subs, *self._height_subs}):
            await ws.close()

    def bump_sequence(self, n: int = 1) -> None:
        """Another client of the same account committed ``n`` transactions."""
        self.sequence += n

    # -- the indexer -----------------------------------------------------------------------------
    def _send(self, conns: list, channel: str, sub_id: str, contents: dict) -> None:
        for ws in list(conns):
            mid = self._next_id.get(id(ws), 1)
            self._next_id[id(ws)] = mid + 1
            msg = {"type": "channel_data", "connection_id": "emu", "message_id": mid, "id": sub_id,
                   "channel": channel, "version": "3.0.0", "contents": contents}  # fmt: skip
            asyncio.get_running_loop().create_task(_send_quietly(ws, json.dumps(msg)))

    async def _ws_handler(self, ws) -> None:
        self.ws_connections += 1
        await ws.send(json.dumps({"type": "connected", "connection_id": "emu", "message_id": 0}))
        self._next_id[id(ws)] = 1
        try:
            async for raw in ws:
                req = json.loads(raw)
                if req.get("type") != "subscribe":
                    continue
                channel = req.get("channel")
                if channel == "v4_block_height":
                    self._height_subs.append(ws)
                    await self._subscribed(ws, channel, "v4_block_height",
                                           {"height": str(self.height), "time": _iso(time.time())})  # fmt: skip
                elif channel == "v4_subaccounts" and req.get("id") == f"{self.address}/{self.subaccount}":
                    self._subs.append(ws)
                    contents = {
                        "subaccount": {"address": self.address, "subaccountNumber": self.subaccount,
                                       "equity": "1000", "freeCollateral": "1000", "openPerpetualPositions": {},
                                       "assetPositions": {}, "marginEnabled": True},
                        "orders": [o.ws(self.subaccount_id) for o in self.open_orders()],
                        "blockHeight": str(self.height),
                    }  # fmt: skip
                    await self._subscribed(ws, channel, req["id"], contents)
                else:
                    await ws.send(json.dumps({"type": "error", "connection_id": "emu", "message_id": 0,
                                              "message": f"Invalid subscription id for channel: ({channel}-{req.get('id')})"}))  # fmt: skip
        except ConnectionClosed:
            pass
        finally:
            for conns in (self._subs, self._height_subs):
                if ws in conns:
                    conns.remove(ws)

    async def _subscribed(self, ws, channel: str, sub_id: str, contents: dict) -> None:
        mid = self._next_id[id(ws)]
        self._next_id[id(ws)] = mid + 1
        await ws.send(json.dumps({"type": "subscribed", "connection_id": "emu", "message_id": mid,
                                  "channel": channel, "id": sub_id, "contents": contents}))  # fmt: skip

    def _process_request(self, connection, request):
        url = urllib.parse.urlsplit(request.path)
        if url.path == "/v4/ws":
            if self.offline:
                self.ws_refused += 1
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "stream down\n")
            return None
        self.rest_requests.append(request.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        status, body = self._rest(url.path, q)
        data = json.dumps(body).encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])  # fmt: skip
        return Response(int(status), status.phrase, headers, data)

    def _rest(self, path: str, q: dict) -> tuple[http.HTTPStatus, Any]:
        ok = http.HTTPStatus.OK
        if path == "/v4/perpetualMarkets":
            return ok, {"markets": self.markets}
        if path == "/v4/height":
            return ok, {"height": str(self.height), "time": _iso(time.time())}
        if path.startswith("/v4/orders/"):
            order = self.orders.get(path.rsplit("/", 1)[1])
            if order is None:
                return http.HTTPStatus.NOT_FOUND, {"errors": [{"msg": f"Unable to find order id {path}"}]}
            return ok, order.rest(self.subaccount_id)
        mine = q.get("address") == self.address and q.get("subaccountNumber") == str(self.subaccount)
        if path == "/v4/orders":
            return ok, [o.rest(self.subaccount_id) for o in self.orders.values()] if mine else []
        if path == "/v4/fills":
            fills = self.fills if mine else []
            if "createdBeforeOrAtHeight" in q:
                fills = [f for f in fills if int(f["createdAtHeight"]) <= int(q["createdBeforeOrAtHeight"])]
            limit = int(q.get("limit", 100))
            return ok, {"fills": list(reversed(fills))[:limit], "pageSize": limit, "totalResults": len(fills)}
        return http.HTTPStatus.NOT_FOUND, {"errors": [{"msg": f"no route {path}"}]}

    # -- the validator ---------------------------------------------------------------------------
    def check_tx(self, tx_bytes: bytes) -> abci_pb2.TxResponse:
        txhash = hashlib.sha256(tx_bytes).hexdigest().upper()
        try:
            decoded = self._check(tx_bytes)
        except _Refused as r:
            decoded = r.decoded or Decoded("?", -1, 0, 0, 0)
            decoded.code, decoded.codespace, decoded.raw_log = r.code, r.codespace, r.log
        self.txs.append(decoded)
        return abci_pb2.TxResponse(txhash=txhash, code=decoded.code, codespace=decoded.codespace,
                                   raw_log=decoded.raw_log)  # fmt: skip

    def _check(self, tx_bytes: bytes) -> Decoded:
        raw = tx_pb2.TxRaw.FromString(tx_bytes)
        body = tx_pb2.TxBody.FromString(raw.body_bytes)
        auth = tx_pb2.AuthInfo.FromString(raw.auth_info_bytes)
        # ADR-027: the chain's decoder refuses non-canonical encodings.
        if (raw.SerializeToString(deterministic=True) != tx_bytes
                or body.SerializeToString(deterministic=True) != raw.body_bytes
                or auth.SerializeToString(deterministic=True) != raw.auth_info_bytes):  # fmt: skip
            raise _Refused("sdk", 2, "tx parse error: not canonical")
        if len(body.messages) != 1 or len(auth.signer_infos) != 1 or len(raw.signatures) != 1:
            raise _Refused("sdk", 2, "expected one message, one signer, one signature")
        signer = auth.signer_infos[0]
        pub = keys_pb2.PubKey()
        if not signer.public_key.Unpack(pub) or pub.key != self.public_key:
            raise _Refused("sdk", 4, "pubkey does not match the account's")
        if signer.mode_info.single.mode != signing_pb2.SIGN_MODE_DIRECT:
            raise _Refused("sdk", 4, "sign mode is not DIRECT")
        doc = tx_pb2.SignDoc(body_bytes=raw.body_bytes, auth_info_bytes=raw.auth_info_bytes, chain_id=self.chain_id,
                             account_number=self.account_number).SerializeToString()  # fmt: skip
        sig = raw.signatures[0]
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        if len(sig) != 64 or s > _N // 2:
            raise _Refused("sdk", 4, "signature is not 64-byte low-S")
        if not verify_signature(self.public_key, doc, r, s):
            raise _Refused("sdk", 4, "signature verification failed")
        any_msg = body.messages[0]
        if any_msg.type_url == "/dydxprotocol.clob.MsgPlaceOrder":
            msg = clob_tx.MsgPlaceOrder()
            any_msg.Unpack(msg)
            return self._place(msg.order, signer.sequence)
        if any_msg.type_url == "/dydxprotocol.clob.MsgCancelOrder":
            msg = clob_tx.MsgCancelOrder()
            any_msg.Unpack(msg)
            return self._cancel(msg, signer.sequence)
        raise _Refused("sdk", 2, f"unexpected message {any_msg.type_url}")

    def _sequence(self, decoded: Decoded) -> None:
        """Replay protection: stateful messages only (ShouldSkipSequenceValidation)."""
        if decoded.flags != 0:
            if decoded.sequence != self.sequence:
                raise _Refused("sdk", 32, f"account sequence mismatch, expected {self.sequence}, "
                                          f"got {decoded.sequence}: incorrect account sequence", decoded)  # fmt: skip
            self.sequence += 1

    def _place(self, o: order_pb2.Order, sequence: int) -> Decoded:
        oid = o.order_id
        d = Decoded("place", sequence, oid.client_id, oid.order_flags, oid.clob_pair_id, o.quantums, o.subticks,
                    o.side, o.time_in_force, o.good_til_block, o.good_til_block_time)  # fmt: skip
        if oid.subaccount_id.owner != self.address or oid.subaccount_id.number != self.subaccount:
            raise _Refused("sdk", 4, "signer is not the order's owner", d)
        market = self._by_clob.get(oid.clob_pair_id)
        if market is None:
            raise _Refused("clob", 8, "ClobPair ID does not reference a valid CLOB", d)
        step, spt = int(market["stepBaseQuantums"]), int(market["subticksPerTick"])
        if o.quantums <= 0 or o.quantums % step:
            raise _Refused("clob", 4, f"Invalid order quantums {o.quantums}", d)
        if o.subticks <= 0 or o.subticks % spt:
            raise _Refused("clob", 6, f"Invalid order subticks {o.subticks}", d)
        if o.side not in (1, 2):
            raise _Refused("clob", 3, "Invalid order side", d)
        flags = oid.order_flags
        if flags == 0:
            if not self.height <= o.good_til_block <= self.height + SHORT_BLOCK_WINDOW:
                raise _Refused("clob", 11 if o.good_til_block > self.height else 10,
                               f"GoodTilBlock {o.good_til_block} outside [{self.height}, +{SHORT_BLOCK_WINDOW}]", d)  # fmt: skip
        elif flags == 64:
            if o.time_in_force == order_pb2.Order.TIME_IN_FORCE_IOC:
                raise _Refused("clob", 3002, "Stateful orders cannot require immediate execution", d)
            if o.good_til_block_time <= time.time():
                raise _Refused("clob", 3001, "Invalid order goodTilBlockTime", d)
        else:
            raise _Refused("clob", 3000, "Invalid order flags", d)
        oid_str = self.order_id(oid.client_id, oid.clob_pair_id, flags)
        existing = self.orders.get(oid_str)
        if existing is not None and existing.open:
            raise _Refused("clob", 3005 if flags else 20, "an order with this id is open", d)
        self._sequence(d)
        ar, qce = int(market["atomicResolution"]), int(market["quantumConversionExponent"])
        order = EmuOrder(
            oid_str, oid.client_id, oid.clob_pair_id, flags, market["ticker"], "BUY" if o.side == 1 else "SELL",
            Decimal(o.quantums).scaleb(ar), Decimal(o.subticks).scaleb(qce - ar - 6), o.quantums, o.subticks,
            o.time_in_force, o.good_til_block, o.good_til_block_time,
            status="BEST_EFFORT_OPENED" if flags == 0 else "OPEN", created_height=self.height,
        )  # fmt: skip
        self.orders[oid_str] = order
        asyncio.get_running_loop().call_soon(self.push, {"orders": [order.ws(self.subaccount_id)]})
        return d

    def _cancel(self, msg: clob_tx.MsgCancelOrder, sequence: int) -> Decoded:
        oid = msg.order_id
        d = Decoded("cancel", sequence, oid.client_id, oid.order_flags, oid.clob_pair_id,
                    gtb=msg.good_til_block, gtbt=msg.good_til_block_time)  # fmt: skip
        if oid.order_flags == 0 and not self.height <= msg.good_til_block <= self.height + SHORT_BLOCK_WINDOW:
            raise _Refused("clob", 10, "cancel GoodTilBlock outside the window", d)
        if oid.order_flags != 0 and msg.good_til_block_time <= time.time():
            raise _Refused("clob", 3003, "The block time is greater than the GoodTilBlockTime", d)
        order = self.orders.get(self.order_id(oid.client_id, oid.clob_pair_id, oid.order_flags))
        if order is None or not order.open:
            raise _Refused("clob", 2 if order is None else 24, "Order does not exist or is not open", d)
        self._sequence(d)
        order.status = "BEST_EFFORT_CANCELED" if oid.order_flags == 0 else "CANCELED"
        order.removal_reason = "ORDER_REMOVAL_REASON_USER_CANCELED"
        asyncio.get_running_loop().call_soon(self.push, {"orders": [order.ws(self.subaccount_id)]})
        return d


def _der(r: int, s: int) -> bytes:
    def integer(v: int) -> bytes:
        b = v.to_bytes((v.bit_length() + 8) // 8, "big")  # a leading 0 byte keeps it positive
        return b"\x02" + bytes((len(b),)) + b

    body = integer(r) + integer(s)
    return b"\x30" + bytes((len(body),)) + body


def verify_signature(public_key: bytes, message: bytes, r: int, s: int) -> bool:
    """ECDSA-SHA256 over secp256k1, with ``cryptography`` (OpenSSL) where installed, so the check does
    not share code with the venue's signer (libsecp256k1); else with coincurve."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        from coincurve import PublicKey

        return PublicKey(public_key).verify(_der(r, s), message)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    try:
        key.verify(_der(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class _Refused(Exception):
    def __init__(self, codespace: str, code: int, log: str, decoded: Decoded | None = None) -> None:
        super().__init__(log)
        self.codespace, self.code, self.log, self.decoded = codespace, code, log, decoded


async def _send_quietly(ws, text: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(text)


class _TxService(tx_grpc.ServiceServicer):
    def __init__(self, emu: ChainEmulator) -> None:
        self.emu = emu

    async def BroadcastTx(self, request, context):  # noqa: N802 (the gRPC method name)
        if self.emu.fail_broadcasts > 0:
            self.emu.fail_broadcasts -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "emulated: connection reset")
        if request.mode != tx_service.BROADCAST_MODE_SYNC:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only BROADCAST_MODE_SYNC is emulated")
        return tx_service.BroadcastTxResponse(tx_response=self.emu.check_tx(request.tx_bytes))


class _AuthQuery(auth_grpc.QueryServicer):
    def __init__(self, emu: ChainEmulator) -> None:
        self.emu = emu

    async def Account(self, request, context):  # noqa: N802
        emu = self.emu
        if request.address != emu.address:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"account {request.address} not found")
        resp = auth_query.QueryAccountResponse()
        resp.account.Pack(
            auth_pb2.BaseAccount(
                address=emu.address, account_number=emu.account_number, sequence=emu.sequence
            ),
            type_url_prefix="/",
        )
        return resp


class _Tendermint(tm_grpc.ServiceServicer):
    def __init__(self, emu: ChainEmulator) -> None:
        self.emu = emu

    async def GetLatestBlock(self, request, context):  # noqa: N802
        resp = tm_query.GetLatestBlockResponse()
        resp.sdk_block.header.chain_id = self.emu.chain_id
        resp.sdk_block.header.height = self.emu.height
        return resp
