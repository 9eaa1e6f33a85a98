"""dYdX v4 order entry: signed Cosmos transactions to a validator, own orders and fills from the indexer.

dYdX v4 has no signed REST API. An order is a ``MsgPlaceOrder`` (a cancel a ``MsgCancelOrder``) in a
Cosmos SDK transaction signed with the wallet's secp256k1 key (SIGN_MODE_DIRECT) and broadcast to a
validator over gRPC (``cosmos.tx.v1beta1.Service/BroadcastTx``, sync mode: the answer is the
validator's CheckTx). What happens next (opened, filled, canceled, expired) comes from the indexer:
the ``v4_subaccounts`` WebSocket channel, and its REST API to reconcile after a reconnect. The
plugin README states each venue rule with its source; this module follows them.

Hot path (``send_new_order``, synchronous on the engine's thread): the grid check, exact
quantums/subticks, the order protobuf, the signature over a transaction whose constant parts
(public key, fee, chain id, account number) were serialised once, then a task is queued that
writes the broadcast. No awaiting, no pydantic, no log formatting.

Short-term orders (good-til-block; the market maker's kind) carry no sequence number on dYdX:
the chain skips sequence checks for them (v4-chain ``protocol/app/ante/replay_protection.go``)
and they are broadcast concurrently. Stateful (long-term, good-til-block-time) orders and their
cancels use the account sequence: they go through one queue, one transaction in flight, the
local sequence incremented on each acceptance and resynced on "account sequence mismatch".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import math
import re
import secrets
import struct
import time
import unicodedata
import urllib.parse
import uuid
from collections import deque
from collections.abc import Awaitable, Coroutine
from datetime import datetime
from decimal import Decimal
from typing import Any

import grpc
import grpc.aio
import orjson
from coincurve import PrivateKey
from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from v4_proto.dydxprotocol.subaccounts import subaccount_pb2
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from latentspeed_core.live import Backoff, InstrumentRules, check_order, http_request
from latentspeed_core.logs import RateLimitedLog
from latentspeed_core.types import (
    ExecType,
    ExecutionReport,
    Liquidity,
    Order,
    OrdType,
    RejectReason,
    TimeInForce,
)
from latentspeed_core.venue import Instrument, Venue, VenueListener

from .config import DydxVenueConfig, grpc_target
from .quantums import MarketSpec, market_spec, size_of, to_quantums, to_subticks

log = logging.getLogger("latentspeed_exchange_dydx.execution")


class DydxSetupError(RuntimeError):
    """The venue cannot trade with this configuration (wrong chain, unknown account): not retried."""


# -- keys: BIP-39 seed, BIP-32 path m/44'/118'/0'/0/0, bech32 address ------------------------------
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1 group order
_HARDENED = 0x80000000
#: Cosmos' coin type 118: every dYdX wallet (the official clients' Bip44Coins.COSMOS default path).
COSMOS_PATH = (44 | _HARDENED, 118 | _HARDENED, _HARDENED, 0, 0)


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP-39: PBKDF2-HMAC-SHA512 over the NFKD mnemonic, 2048 rounds, salt "mnemonic" + passphrase.

    The word checksum is not checked here: a wrong mnemonic gives an address the chain does not
    know, which the venue reports at start (``GetAccount``)."""
    words = unicodedata.normalize("NFKD", " ".join(mnemonic.split()))
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase)
    return hashlib.pbkdf2_hmac("sha512", words.encode(), salt.encode(), 2048)


def derive_private_key(seed: bytes, path: tuple[int, ...] = COSMOS_PATH) -> bytes:
    """BIP-32 child private key along ``path`` (secp256k1)."""
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = int.from_bytes(digest[:32], "big"), digest[32:]
    for index in path:
        if index & _HARDENED:
            data = b"\x00" + key.to_bytes(32, "big")
        else:
            data = PrivateKey(key.to_bytes(32, "big")).public_key.format(compressed=True)
        digest = hmac.new(chain, data + index.to_bytes(4, "big"), hashlib.sha512).digest()
        tweak = int.from_bytes(digest[:32], "big")
        key, chain = (tweak + key) % _N, digest[32:]
        if tweak >= _N or key == 0:  # probability ~2^-127; BIP-32 says use the next index
            raise ValueError("invalid BIP-32 child key; this mnemonic cannot be used on this path")
    return key.to_bytes(32, "big")


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            if (top >> i) & 1:
                chk ^= g
    return chk


def bech32_encode(hrp: str, payload: bytes) -> str:
    """BIP-173 bech32 of ``payload`` (8-bit bytes regrouped into 5-bit words)."""
    acc = bits = 0
    words: list[int] = []
    for byte in payload:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            words.append((acc >> bits) & 31)
    if bits:
        words.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    mod = _bech32_polymod(expanded + words + [0] * 6) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[w] for w in words + checksum)


def ripemd160(data: bytes) -> bytes:
    """RIPEMD-160 (the address hash): hashlib's when OpenSSL offers it, else :func:`_ripemd160_py`."""
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 without the legacy provider (e.g. Ubuntu 22.04's Python)
        return _ripemd160_py(data)


# RIPEMD-160 as specified by Dobbertin, Bosselaers and Preneel (1996): word order, shifts, constants.
_RL = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
       3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12, 1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
       4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13]  # fmt: skip
_RR = [5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
       15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13, 8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
       12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11]  # fmt: skip
_SL = [11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8, 7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
       11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5, 11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
       9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6]  # fmt: skip
_SR = [8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6, 9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
       9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5, 15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
       8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11]  # fmt: skip
_KL = (0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E)
_KR = (0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000)
_M32 = 0xFFFFFFFF


def _rmd_f(j: int, x: int, y: int, z: int) -> int:
    if j < 16:
        return x ^ y ^ z
    if j < 32:
        return (x & y) | (~x & z)
    if j < 48:
        return ((x | ~y) & _M32) ^ z
    if j < 64:
        return (x & z) | (y & ~z)
    return x ^ ((y | ~z) & _M32)


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def _ripemd160_py(data: bytes) -> bytes:
    """Pure-Python RIPEMD-160, used once at start-up where hashlib lacks it."""
    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", 8 * len(data))
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off : off + 64])
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            t = _rol((al + _rmd_f(j, bl, cl, dl) + x[_RL[j]] + _KL[j >> 4]) & _M32, _SL[j])
            al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, (t + el) & _M32
            t = _rol((ar + _rmd_f(79 - j, br, cr, dr) + x[_RR[j]] + _KR[j >> 4]) & _M32, _SR[j])
            ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, (t + er) & _M32
        h = [(h[1] + cl + dr) & _M32, (h[2] + dl + er) & _M32, (h[3] + el + ar) & _M32,
             (h[4] + al + br) & _M32, (h[0] + bl + cr) & _M32]  # fmt: skip
    return struct.pack("<5I", *h)


class Wallet:
    """The signing key and its address. Its repr shows the address only: the key never leaves."""

    __slots__ = ("_key", "public_key", "address")

    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(private_key)
        #: 33-byte compressed secp256k1 public key.
        self.public_key: bytes = self._key.public_key.format(compressed=True)
        #: bech32("dydx", RIPEMD160(SHA256(public key))), the Cosmos account address.
        self.address = bech32_encode("dydx", ripemd160(hashlib.sha256(self.public_key).digest()))

    @classmethod
    def from_mnemonic(cls, mnemonic: str) -> Wallet:
        return cls(derive_private_key(seed_from_mnemonic(mnemonic)))

    def sign(self, sign_bytes: bytes) -> bytes:
        """64-byte ``r || s`` ECDSA signature of SHA-256(``sign_bytes``), low-S (libsecp256k1 always
        normalises s, which Cosmos requires)."""
        return self._key.sign_recoverable(sign_bytes)[:64]

    def __repr__(self) -> str:
        return f"Wallet({self.address})"


# -- transactions: protobuf wire format of TxRaw / SignDoc around one message ---------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (number < 16)."""
    return bytes((number << 3 | 2,)) + _varint(len(payload)) + payload


#: Gas limit of every transaction. dYdX does not charge gas for order placement and cancellation
#: (``protocol/app/ante/gas.go``: free gas meter for clob messages), so the fee has no amount.
GAS_LIMIT = 1_000_000
PLACE_ORDER_URL = b"/dydxprotocol.clob.MsgPlaceOrder"
CANCEL_ORDER_URL = b"/dydxprotocol.clob.MsgCancelOrder"


class TxSigner:
    """Single-message transactions signed in SIGN_MODE_DIRECT, their constant parts serialised once.

    ``TxRaw{1: body_bytes, 2: auth_info_bytes, 3: signature}`` where the signature covers
    ``SignDoc{1: body_bytes, 2: auth_info_bytes, 3: chain_id, 4: account_number}``. Written in the
    canonical form the chain's decoder requires (ADR-027: fields in order, no default values)."""

    def __init__(self, wallet: Wallet, chain_id: str, account_number: int) -> None:
        self.wallet = wallet
        pub_any = _field(1, b"/cosmos.crypto.secp256k1.PubKey") + _field(2, _field(1, wallet.public_key))
        direct = _field(1, b"\x08\x01")  # ModeInfo{single: {mode: SIGN_MODE_DIRECT}}
        self._signer_head = _field(1, pub_any) + _field(2, direct)
        self._fee = _field(2, b"\x10" + _varint(GAS_LIMIT))  # AuthInfo.fee = Fee{gas_limit}
        self._doc_tail = _field(3, chain_id.encode()) + (
            b"\x20" + _varint(account_number) if account_number else b""
        )
        self._auth_cache: tuple[int, bytes] = (-1, b"")

    def auth_info(self, sequence: int) -> bytes:
        """``AuthInfo`` bytes for ``sequence`` (cached: short-term orders reuse one)."""
        seq, data = self._auth_cache
        if seq != sequence:
            info = self._signer_head + (b"\x18" + _varint(sequence) if sequence else b"")
            data = _field(1, info) + self._fee
            self._auth_cache = (sequence, data)
        return data

    def sign(self, type_url: bytes, message: bytes, sequence: int) -> bytes:
        """The ``TxRaw`` bytes of a transaction holding one message (``Any{type_url, value}``)."""
        body = _field(1, _field(1, _field(1, type_url) + _field(2, message)))  # TxRaw/SignDoc field 1
        auth = _field(2, self.auth_info(sequence))
        return body + auth + _field(3, self.wallet.sign(body + auth + self._doc_tail))


def broadcast_request(tx: bytes) -> bytes:
    """``BroadcastTxRequest{tx_bytes, mode: BROADCAST_MODE_SYNC}``: the answer is the CheckTx result."""
    return _field(1, tx) + b"\x10\x02"


# -- the indexer's ids -----------------------------------------------------------------------------
#: The indexer derives its ids as UUIDv5 in this namespace (v4-chain indexer/packages/postgres
#: src/helpers/uuid.ts): a subaccount from ``"{address}-{number}"``, an order from
#: ``"{subaccount uuid}-{clientId}-{clobPairId}-{orderFlags}"``. Fills carry only the order's id.
INDEXER_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")


def subaccount_uuid(address: str, number: int) -> str:
    return str(uuid.uuid5(INDEXER_NAMESPACE, f"{address}-{number}"))


def order_uuid(subaccount_id: str, client_id: int, clob_pair_id: int, order_flags: int) -> str:
    return str(uuid.uuid5(INDEXER_NAMESPACE, f"{subaccount_id}-{client_id}-{clob_pair_id}-{order_flags}"))


class OrderIds:
    """:func:`order_uuid` for one subaccount, per order in ~1 us instead of ~4 (the SHA-1 state of the
    namespace and subaccount prefix is computed once; UUIDv5 is SHA-1 with version and variant bits)."""

    __slots__ = ("_prefix",)

    def __init__(self, subaccount_id: str) -> None:
        self._prefix = hashlib.sha1(INDEXER_NAMESPACE.bytes + f"{subaccount_id}-".encode())

    def __call__(self, client_id: int, clob_pair_id: int, order_flags: int) -> str:
        h = self._prefix.copy()
        h.update(f"{client_id}-{clob_pair_id}-{order_flags}".encode())
        b = bytearray(h.digest()[:16])
        b[6] = (b[6] & 0x0F) | 0x50  # version 5
        b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = b.hex()
        return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


#: OrderId.order_flags (order.proto): 0 short-term, 64 long-term (stateful).
SHORT_TERM = 0
LONG_TERM = 64
_SIDE = (order_pb2.Order.SIDE_BUY, order_pb2.Order.SIDE_SELL)
_TIF_DEFAULT = order_pb2.Order.TIME_IN_FORCE_UNSPECIFIED
_TIF_IOC = order_pb2.Order.TIME_IN_FORCE_IOC
_TIF_POST_ONLY = order_pb2.Order.TIME_IN_FORCE_POST_ONLY
_UINT32 = 0xFFFFFFFF
#: Client ids of a session come from ``[base, base + window)``: no order still open from another
#: session may have its id there (checked at start).
CLIENT_ID_WINDOW = 1 << 24

# Cosmos SDK ErrWrongSequence (codespace "sdk", code 32), from the ante handler's replay protection.
_WRONG_SEQUENCE = ("sdk", 32)
_EXPECTED_SEQ = re.compile(r"expected (\d+)")
# clob module errors (protocol/x/clob/types/errors.go) -> the engine's reject reasons.
_REJECTS = {
    ("clob", 4): RejectReason.INVALID_QUANTITY,
    ("clob", 18): RejectReason.INVALID_QUANTITY,
    ("clob", 6): RejectReason.INVALID_PRICE,
    ("clob", 8): RejectReason.UNKNOWN_SYMBOL,
    ("clob", 34): RejectReason.UNKNOWN_SYMBOL,
    ("clob", 20): RejectReason.DUPLICATE_CL_ORD_ID,
    ("clob", 30): RejectReason.DUPLICATE_CL_ORD_ID,
    ("clob", 3005): RejectReason.DUPLICATE_CL_ORD_ID,
    ("clob", 17): RejectReason.RISK_OR_THROTTLE,
}
_LIQUIDITY = {"MAKER": Liquidity.MAKER, "TAKER": Liquidity.TAKER}
# Indexer order statuses (APIOrderStatus).
_OPEN_STATUSES = frozenset(("OPEN", "BEST_EFFORT_OPENED", "UNTRIGGERED"))
_CANCELED_STATUSES = frozenset(("CANCELED", "BEST_EFFORT_CANCELED"))

# Our view of an order's state (what was last reported to the engine).
_PENDING, _ACKED, _FINAL = 0, 1, 2
#: Seconds a final order is remembered: fills may follow a best-effort cancel, reports may repeat.
RETAIN_S = 120.0
#: A stateful order not seen by the indexer this many blocks after its acceptance is looked up.
STATEFUL_LOOKUP_BLOCKS = 10
#: Blocks past a short-term order's good-til-block before it is looked up (the indexer lags a little).
EXPIRY_GRACE_BLOCKS = 2
#: REST pages of fills read back at most per reconciliation.
MAX_FILL_PAGES = 20
FILL_PAGE = 100


class _Live:
    """One order of this session: what was sent, and what the indexer said since."""

    __slots__ = (
        "cl_ord_id", "symbol", "side", "qty", "size", "price", "client_id", "flags", "clob_pair_id",
        "gtb", "gtbt", "uuid", "cum", "fill_ids", "state", "seen", "cancel_acked", "sent_height",
        "sent_mono", "checking",
    )  # fmt: skip

    def __init__(self, order: Order, spec: MarketSpec, quantums: int, client_id: int, flags: int) -> None:
        self.cl_ord_id = order.cl_ord_id
        self.symbol = order.symbol
        self.side = order.side
        self.qty = order.qty
        #: The size sent, exactly (quantums back to a decimal).
        self.size: Decimal = size_of(spec, quantums)
        self.price = order.price
        self.client_id = client_id
        self.flags = flags
        self.clob_pair_id = spec.clob_pair_id
        self.gtb = 0
        self.gtbt = 0
        self.uuid = ""
        #: Filled size: the sum of the distinct fills seen (by fill id).
        self.cum = Decimal(0)
        self.fill_ids: set[str] = set()
        self.state = _PENDING
        #: The indexer has reported this order at least once.
        self.seen = False
        self.cancel_acked = False
        self.sent_height = 0
        self.sent_mono = 0.0
        self.checking = False


class DydxVenue(Venue):
    """The ``dydx`` venue. See the module docstring and the plugin README for the rules."""

    name = "DYDX"

    def __init__(self, config: DydxVenueConfig) -> None:
        super().__init__(config)
        cfg = config
        self.endpoints = cfg.endpoints()
        # The mnemonic is read here, turned into the key and dropped: only the Wallet keeps the key.
        self.wallet = Wallet.from_mnemonic(cfg.mnemonic_value())
        self.address = self.wallet.address
        self.subaccount = cfg.subaccount
        self.subaccount_id = subaccount_uuid(self.address, cfg.subaccount)
        self._order_id = OrderIds(self.subaccount_id)
        self.network = cfg.network
        #: Symbol -> Instrument (ctx.instrument): tick and step size per market, from the indexer.
        self.instruments: dict[str, Instrument] = {}
        self._markets: dict[str, MarketSpec] = {}
        self._rules: dict[str, InstrumentRules] = {}
        self.height = 0
        self.sequence = 0
        self.account_number = 0
        self.chain_id = ""
        self._signer: TxSigner | None = None
        self._channel: grpc.aio.Channel | None = None
        self._broadcast_rpc: grpc.aio.UnaryUnaryMultiCallable | None = None
        self._listener: VenueListener | None = None
        #: cl_ord_id -> order, and the indexer's order id -> order, for this session's orders.
        self._orders: dict[int, _Live] = {}
        self._by_uuid: dict[str, _Live] = {}
        self._retired: deque[tuple[float, _Live]] = deque()
        self._cid_base: int | None = None
        self._stateful: deque[tuple[bytes, bytes, _Live, int]] = deque()
        self._stateful_wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._fill_sync: asyncio.Task | None = None
        self._reconciling: asyncio.Task | None = None
        self._ws: ClientConnection | None = None
        self._close_reason = ""
        self._exec_ids = itertools.count(1)
        self._rlog = RateLimitedLog(log)
        # Hot-path copies of the config (no pydantic attribute access per order).
        self._gtb_blocks = cfg.good_til_blocks
        self._gtbt_seconds = cfg.good_til_seconds
        self._long_term = cfg.order_kind == "long_term"
        self._limit_tif = _TIF_POST_ONLY if cfg.post_only else _TIF_DEFAULT
        self._timeout = cfg.connect_timeout
        self._subaccount_pb = subaccount_pb2.SubaccountId(owner=self.address, number=cfg.subaccount)
        # Counters (tests, dashboards).
        self.orders_sent = 0
        self.cancels_sent = 0
        self.broadcast_rejects = 0
        self.sequence_resyncs = 0
        self.reconciliations = 0
        self.duplicate_fills = 0
        self.foreign_fills = 0
        #: Fills reported with no usable ``fee`` from the indexer (the engine charged its own rates).
        self.fills_without_fee = 0
        self.reports = 0

    def __repr__(self) -> str:
        return f"DydxVenue({self.network}, {self.address}/{self.subaccount})"

    # -- running -----------------------------------------------------------------------------------
    async def run(self, listener: VenueListener) -> None:
        self._listener = listener
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max)
        worker = asyncio.create_task(self._stateful_worker(), name="dydx-stateful")
        try:
            await self._start_node(backoff)
            while True:
                started = time.monotonic()
                reason = "indexer connection closed"
                try:
                    await self._session()
                    reason = self._close_reason or reason
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                    reason = f"indexer: {type(exc).__name__}: {exc}"
                except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a malformed REST answer
                    reason = f"indexer: unexpected answer: {type(exc).__name__}: {exc}"
                finally:
                    self._ws = None
                    self._down(reason)
                backoff.connected_for(time.monotonic() - started)
                delay = backoff.delay()
                self._rlog("reconnect", logging.WARNING, "dydx: %s; reconnecting in %.2fs", reason, delay)
                await asyncio.sleep(delay)
        finally:
            worker.cancel()
            for t in list(self._tasks):
                t.cancel()
            if self._channel is not None:
                await self._channel.close()
                self._channel = None

    def _down(self, reason: str) -> None:
        task, self._reconciling = self._reconciling, None
        if task is not None:
            task.cancel()  # its REST answers describe a connection that is gone
        if self.connected:
            self.connected = False
            if self._listener is not None:
                self._listener.on_venue_disconnected(reason)

    async def _start_node(self, backoff: Backoff) -> None:
        """gRPC channel, chain id and height (``GetLatestBlock``), account number and sequence."""
        target, tls = grpc_target(self.endpoints.node_grpc_url)
        options = [("grpc.keepalive_time_ms", 20_000), ("grpc.keepalive_timeout_ms", 10_000)]
        if tls:
            self._channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._broadcast_rpc = self._channel.unary_unary(
            "/cosmos.tx.v1beta1.Service/BroadcastTx",
            response_deserializer=tx_service.BroadcastTxResponse.FromString,
        )
        while True:
            try:
                block = await self._channel.unary_unary(
                    "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
                    request_serializer=tm_query.GetLatestBlockRequest.SerializeToString,
                    response_deserializer=tm_query.GetLatestBlockResponse.FromString,
                )(tm_query.GetLatestBlockRequest(), timeout=self._timeout)
                header = block.sdk_block.header if block.HasField("sdk_block") else block.block.header
                if header.chain_id != self.endpoints.chain_id:
                    raise DydxSetupError(
                        f"dydx: node {self.endpoints.node_grpc_url} is on chain {header.chain_id!r}, "
                        f"not {self.endpoints.chain_id!r} ({self.network}); check network / node_grpc_url"
                    )
                self.chain_id = header.chain_id
                self.height = max(self.height, int(header.height))
                await self._load_account()
                break
            except grpc.aio.AioRpcError as exc:
                delay = backoff.delay()
                log.warning("dydx: node %s: %s; retrying in %.2fs", target, _rpc_error(exc), delay)
                await asyncio.sleep(delay)
        self._signer = TxSigner(self.wallet, self.chain_id, self.account_number)
        log.info("dydx: %s/%d on %s (%s), account %d, sequence %d", self.address, self.subaccount,
                 self.chain_id, target, self.account_number, self.sequence)  # fmt: skip

    async def _load_account(self) -> None:
        """Account number and sequence from the chain (``cosmos.auth.v1beta1.Query/Account``)."""
        try:
            resp = await self._channel.unary_unary(
                "/cosmos.auth.v1beta1.Query/Account",
                request_serializer=auth_query.QueryAccountRequest.SerializeToString,
                response_deserializer=auth_query.QueryAccountResponse.FromString,
            )(auth_query.QueryAccountRequest(address=self.address), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise DydxSetupError(
                    f"dydx: account {self.address} does not exist on {self.network} "
                    "(a different mnemonic, or an address never funded)"
                ) from None
            raise
        account = auth_pb2.BaseAccount()
        if not resp.account.Unpack(account):
            raise DydxSetupError(f"dydx: account {self.address}: unexpected type {resp.account.type_url}")
        self.account_number = account.account_number
        self.sequence = account.sequence

    async def _session(self) -> None:
        """One indexer connection: markets, subscriptions, reconciliation, then updates until it drops."""
        await self._load_markets()
        ws_url = self.endpoints.indexer_ws_url
        self._close_reason = ""
        async with ws_connect(ws_url, open_timeout=self._timeout, ping_interval=20, ping_timeout=20,
                              max_size=1 << 24) as ws:  # fmt: skip
            self._ws = ws
            sub_id = f"{self.address}/{self.subaccount}"
            await ws.send(orjson.dumps({"type": "subscribe", "channel": "v4_block_height"}).decode())
            await ws.send(
                orjson.dumps({"type": "subscribe", "channel": "v4_subaccounts", "id": sub_id}).decode()
            )
            async for raw in ws:
                receipt = time.time_ns()
                try:
                    msg = orjson.loads(raw)
                    self._on_message(msg, receipt)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    self._rlog("bad", logging.WARNING, "dydx: skipped an indexer message: %s: %s",
                               type(exc).__name__, exc)  # fmt: skip
                except _Resubscribe as exc:
                    raise ConnectionError(str(exc)) from None

    async def _load_markets(self) -> None:
        """Tick, step and quantum conversion per market (``GET /v4/perpetualMarkets``)."""
        data = await self._get("/v4/perpetualMarkets")
        markets = data.get("markets") or {}
        for ticker, entry in markets.items():
            try:
                spec = market_spec(entry)
            except ValueError as exc:
                self._rlog("market", logging.WARNING, "dydx: market %s skipped: %s", ticker, exc)
                continue
            self._markets[spec.ticker] = spec
            tick, step = float(spec.tick_size), float(spec.step_size)
            self.instruments[spec.ticker] = Instrument(spec.clob_pair_id, spec.ticker, tick, step)
            self._rules[spec.ticker] = InstrumentRules(spec.ticker, spec.ticker, tick, step, min_qty=step)

    async def _get(self, path: str, params: dict | None = None, missing_ok: bool = False) -> dict | None:
        url = self.endpoints.indexer_rest_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        resp = await http_request("GET", url, timeout=self._timeout)
        if resp.status == 404 and missing_ok:
            return None
        if resp.status != 200:
            raise OSError(f"GET {path}: HTTP {resp.status}: {resp.body[:200]!r}")
        return orjson.loads(resp.body)

    # -- indexer messages --------------------------------------------------------------------------
    def _on_message(self, msg: dict, receipt: int) -> None:
        kind = msg.get("type")
        channel = msg.get("channel")
        if channel == "v4_subaccounts":
            if kind == "channel_data":
                self._on_subaccount(msg["contents"], receipt)
            elif kind == "channel_batch_data":
                for contents in msg["contents"]:
                    self._on_subaccount(contents, receipt)
            elif kind == "subscribed":
                self._on_subscribed(msg["contents"], receipt)
        elif channel == "v4_block_height":
            contents = msg.get("contents") or {}
            if kind == "channel_batch_data":
                contents = contents[-1] if contents else {}
            self._on_height(int(contents.get("blockHeight") or contents.get("height") or 0))
        elif kind == "error":
            text = str(msg.get("message", ""))
            log.error("dydx: indexer error: %s", text[:300])
            if "v4_subaccounts" in text or "v4_block_height" in text:
                raise _Resubscribe(f"indexer refused a subscription: {text[:200]}")

    def _on_height(self, height: int) -> None:
        if height > self.height:
            self.height = height
            if self.connected:
                self._sweep()

    def _on_subscribed(self, contents: dict, receipt: int) -> None:
        """The stream's first message: the subaccount's open orders. Reconcile, then trade."""
        opened = contents.get("orders") or []
        self._on_height(int(contents.get("blockHeight") or 0))
        if self._cid_base is None:
            self._cid_base = self._client_id_base(opened)
        if self._reconciling is not None:
            self._reconciling.cancel()
        self._reconciling = self._spawn(self._reconcile(opened, receipt), "dydx-reconcile")

    def _client_id_base(self, opened: list[dict]) -> int:
        """A random start for this session's client ids that no open order of the subaccount is near."""
        taken = {int(o["clientId"]) for o in opened if "clientId" in o}
        if taken:
            log.info("dydx: %d open order(s) on %s/%d not placed by this session (left alone)",
                     len(taken), self.address, self.subaccount)  # fmt: skip
        while True:
            base = secrets.randbits(32)
            if not any((cid - base) & _UINT32 < CLIENT_ID_WINDOW for cid in taken):
                return base

    def _on_subaccount(self, contents: dict, receipt: int) -> None:
        height = contents.get("blockHeight")
        if height:
            self._on_height(int(height))
        for fill in contents.get("fills") or ():
            self._on_fill(fill, receipt)
        for order in contents.get("orders") or ():
            self._on_order(order, receipt)

    def _on_fill(self, fill: dict, receipt: int) -> None:
        """A fill of ours: counted once by its id, reported with the new cumulative size and its fee."""
        live = self._by_uuid.get(fill.get("orderId") or "")
        if live is None:
            self.foreign_fills += 1
            kind = fill.get("type")
            if kind in ("LIQUIDATION", "DELEVERAGED", "OFFSETTING"):
                self._rlog("foreign", logging.WARNING, "dydx: %s fill on %s (%s %s @ %s): the position changed "
                           "outside this session's orders", kind, fill.get("ticker") or fill.get("market"),
                           fill.get("side"), fill.get("size"), fill.get("price"))  # fmt: skip
            return
        fid = fill["id"]
        if fid in live.fill_ids:
            self.duplicate_fills += 1
            return
        size = Decimal(fill["size"])
        live.fill_ids.add(fid)
        live.cum += size
        live.seen = True
        done = live.cum >= live.size
        # One report per indexer fill, so the fill's own fee is the report's (no sums to make).
        fee = _fill_fee(fill.get("fee"))
        if fee is None:
            self.fills_without_fee += 1
            self._rlog("fee", logging.WARNING, "dydx: fill %s has fee %r: the engine's fee rates are charged",
                       fid, fill.get("fee"))  # fmt: skip
        self._report(
            live, ExecType.FILL if done else ExecType.PARTIAL_FILL, float(fill["price"]), float(size),
            ts=_iso_ns(fill.get("createdAt")), receipt=receipt, liquidity=_LIQUIDITY.get(fill.get("liquidity"), 0),
            fee=fee,
        )  # fmt: skip
        if done:
            self._finish(live)

    def _on_order(self, order: dict, receipt: int, force: bool = False) -> None:
        """An order update of ours. ``force``: report its state even if already reported (after a
        reconnect the engine marked it unknown)."""
        live = self._by_uuid.get(order.get("id") or "")
        if live is None:
            return
        live.seen = True
        status = order.get("status")
        filled = order.get("totalFilled")
        if filled is not None and Decimal(filled) > live.cum:
            self._want_fills()  # the fill messages are behind: read them back from REST
        if status in _OPEN_STATUSES:
            if live.state == _PENDING or (force and live.state != _FINAL):
                live.state = _ACKED
                et = ExecType.PARTIAL_FILL if live.cum else ExecType.NEW
                self._report(live, et, live.price, receipt=receipt)
        elif status in _CANCELED_STATUSES or status == "ERROR":
            # Short-term cancels are best effort: a fill may still follow; the engine counts it then.
            if live.state != _FINAL:
                et = ExecType.REJECTED if status == "ERROR" and live.state == _PENDING else ExecType.CANCELED
                self._report(live, et, receipt=receipt)
                self._finish(live)
        elif status == "FILLED":
            if live.cum >= live.size and live.state != _FINAL:
                self._report(live, ExecType.FILL, receipt=receipt)
                self._finish(live)

    # -- reconciliation ----------------------------------------------------------------------------
    async def _reconcile(self, opened: list[dict], receipt: int) -> None:
        """After (re)subscribing: every order of this session gets its state from the indexer (the
        stream's open orders, then REST fills and REST order lookups), then the venue is connected."""
        self.reconciliations += 1
        open_ids = set()
        for order in opened:
            open_ids.add(order.get("id"))
            self._on_order(order, receipt, force=True)
        try:
            if self._orders:
                await self._sync_fills()
                for live in list(self._orders.values()):
                    if live.state != _FINAL and live.uuid not in open_ids:
                        await self._lookup(live)
        except Exception as exc:  # REST down or a malformed answer: reconnect and reconcile again
            self._reconciling = None
            self._close_reason = f"reconciliation failed: {type(exc).__name__}: {exc}"
            if self._ws is not None:
                await self._ws.close()
            return
        self._reconciling = None
        if not self.connected:
            self.connected = True
            log.info("dydx: ready: %d markets, height %d, %d order(s) of this session tracked",
                     len(self._markets), self.height, len(self._orders))  # fmt: skip
            self._listener.on_venue_connected()

    def _want_fills(self) -> None:
        """Read fills back from REST soon (once, however many updates asked)."""
        if self._fill_sync is None or self._fill_sync.done():
            self._fill_sync = self._spawn(
                self._quietly(self._sync_fills(), "fill reconciliation"), "dydx-fills"
            )

    async def _sync_fills(self) -> None:
        """Recent fills of the subaccount (``GET /v4/fills``), newest first, paged back by height until
        older than every order still tracked: any not yet seen is applied (by fill id)."""
        if not self._orders:
            return
        oldest = min(live.sent_height for live in self._orders.values())
        before: int | None = None
        for _ in range(MAX_FILL_PAGES):
            params = {"address": self.address, "subaccountNumber": self.subaccount, "limit": FILL_PAGE}
            if before is not None:
                params["createdBeforeOrAtHeight"] = before
            data = await self._get("/v4/fills", params)
            fills = data.get("fills") or []
            receipt = time.time_ns()
            for fill in reversed(fills):  # oldest first: cumulative sizes grow in order
                self._on_fill(fill, receipt)
            heights = [int(f.get("createdAtHeight") or 0) for f in fills]
            if len(fills) < FILL_PAGE or not heights or min(heights) < oldest:
                return
            low = min(heights)
            before = low if before is None or low < before else low - 1
        self._rlog(
            "pages", logging.WARNING, "dydx: fill reconciliation stopped after %d pages", MAX_FILL_PAGES
        )

    async def _lookup(self, live: _Live) -> None:
        """One order's state from ``GET /v4/orders/{id}``; absent and past its life: canceled."""
        if live.checking:
            return
        live.checking = True
        try:
            order = await self._get(f"/v4/orders/{live.uuid}", missing_ok=True)
        finally:
            live.checking = False
        receipt = time.time_ns()
        if order is not None:
            if Decimal(order.get("totalFilled") or 0) > live.cum:
                await self._sync_fills()
            self._on_order(order, receipt, force=True)
            return
        if live.state == _FINAL:
            return
        if live.flags == SHORT_TERM:
            if self.height > live.gtb or live.cancel_acked:
                # Never on the book (or canceled before the indexer stored it), and past its last block.
                self._report(live, ExecType.CANCELED, receipt=receipt)
                self._finish(live)
        elif self.height >= live.sent_height + STATEFUL_LOOKUP_BLOCKS:
            # A stateful order the chain never wrote (dropped from the mempool, failed in the block).
            self._rlog("dropped", logging.WARNING, "dydx: order %d never reached the chain", live.cl_ord_id)
            self._report(live, ExecType.REJECTED, receipt=receipt)
            self._finish(live)

    def _sweep(self) -> None:
        """On each new block: orders the indexer should have settled but did not are looked up."""
        height = self.height
        for live in self._orders.values():
            if live.state == _FINAL or live.checking or not live.uuid:
                continue
            if live.flags == SHORT_TERM:
                due = live.gtb + EXPIRY_GRACE_BLOCKS < height
            else:
                due = not live.seen and live.sent_height + STATEFUL_LOOKUP_BLOCKS <= height
            if due:
                self._spawn(self._quietly(self._lookup(live), "order lookup"), "dydx-lookup")

    async def _quietly(self, coro: Awaitable[None], what: str) -> None:
        """A background REST step: a failure is logged (rate-limited) and retried by the next trigger."""
        try:
            await coro
        except Exception as exc:
            self._rlog(what, logging.WARNING, "dydx: %s failed: %s: %s", what, type(exc).__name__, exc)

    # -- order entry (hot path) --------------------------------------------------------------------
    def send_new_order(self, order: Order) -> None:
        if not self.connected:
            raise ConnectionError("dydx venue: not connected")
        symbol = order.symbol
        spec = self._markets.get(symbol)
        if spec is None:
            raise ValueError(f"dydx: unknown market {symbol!r}")
        if spec.status != "ACTIVE":
            raise ValueError(f"dydx: {symbol} is {spec.status}: not taking orders")
        if order.ord_type == OrdType.MARKET:
            raise ValueError("dydx: no market orders on dYdX v4; send a limit order with tif IOC")
        why = check_order(order, self._rules[symbol])
        if why is not None:
            raise ValueError(why)
        quantums = to_quantums(spec, order.qty)
        subticks = to_subticks(spec, order.price)
        client_id = (self._cid_base + order.cl_ord_id) & _UINT32
        ioc = order.tif == TimeInForce.IOC
        stateful = self._long_term and not ioc  # IOC is short-term only (docs: stateful orders cannot be IOC)
        flags = LONG_TERM if stateful else SHORT_TERM
        live = _Live(order, spec, quantums, client_id, flags)
        o = order_pb2.Order(
            order_id=order_pb2.OrderId(
                subaccount_id=self._subaccount_pb, client_id=client_id, order_flags=flags,
                clob_pair_id=spec.clob_pair_id,
            ),
            side=_SIDE[order.side], quantums=quantums, subticks=subticks,
            time_in_force=_TIF_IOC if ioc else (_TIF_POST_ONLY if order.tif == TimeInForce.POST_ONLY else self._limit_tif),
        )  # fmt: skip
        if stateful:
            live.gtbt = int(time.time()) + self._gtbt_seconds
            o.good_til_block_time = live.gtbt
        else:
            live.gtb = self.height + self._gtb_blocks
            o.good_til_block = live.gtb
        message = clob_tx.MsgPlaceOrder(order=o).SerializeToString()
        live.sent_height = self.height
        live.sent_mono = time.monotonic()
        if stateful:
            self._stateful.append((PLACE_ORDER_URL, message, live, 0))
            self._stateful_wake.set()
        else:
            tx = self._signer.sign(PLACE_ORDER_URL, message, self.sequence)
            self._spawn(self._broadcast(tx, live, 0), "dydx-place")
        self._orders[order.cl_ord_id] = live
        live.uuid = self._order_id(client_id, spec.clob_pair_id, flags)
        self._by_uuid[live.uuid] = live
        self.orders_sent += 1

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        if not self.connected:
            raise ConnectionError("dydx venue: not connected")
        live = self._orders.get(orig_cl_ord_id)
        if live is None or live.state == _FINAL:
            raise ValueError(f"dydx: order {orig_cl_ord_id} is not open")
        oid = order_pb2.OrderId(subaccount_id=self._subaccount_pb, client_id=live.client_id,
                                order_flags=live.flags, clob_pair_id=live.clob_pair_id)  # fmt: skip
        if live.flags == SHORT_TERM:
            # Valid up to the current window's end, which covers the order's own good-til-block.
            message = clob_tx.MsgCancelOrder(order_id=oid, good_til_block=self.height + self._gtb_blocks)
            tx = self._signer.sign(CANCEL_ORDER_URL, message.SerializeToString(), self.sequence)
            self._spawn(self._broadcast(tx, live, cl_ord_id), "dydx-cancel")
        else:
            message = clob_tx.MsgCancelOrder(order_id=oid, good_til_block_time=live.gtbt)
            self._stateful.append((CANCEL_ORDER_URL, message.SerializeToString(), live, cl_ord_id))
            self._stateful_wake.set()
        self.cancels_sent += 1

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- broadcasts --------------------------------------------------------------------------------
    async def _broadcast(self, tx: bytes, live: _Live, cancel_id: int) -> None:
        """One short-term transaction: its CheckTx answer acknowledges or rejects it."""
        try:
            resp = await self._broadcast_rpc(broadcast_request(tx), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            self._lost(live, cancel_id, exc)
            return
        self._answer(resp.tx_response, live, cancel_id)

    def _lost(self, live: _Live, cancel_id: int, exc: grpc.aio.AioRpcError) -> None:
        """No answer to a broadcast: it may or may not have reached the validator. An order stays
        pending (the indexer, or the expiry sweep, will say); a cancel is reported refused so the
        strategy may cancel again (if it did reach the book, the indexer reports the cancel anyway)."""
        self._rlog("rpc", logging.WARNING, "dydx: no answer to the broadcast of %s %d: %s",
                   "a cancel of" if cancel_id else "order", live.cl_ord_id, _rpc_error(exc))  # fmt: skip
        if cancel_id:
            self._report(live, ExecType.REJECTED, cl_ord_id=cancel_id)

    def _answer(self, txr: abci_pb2.TxResponse, live: _Live, cancel_id: int) -> None:
        if txr.code == 0:
            if cancel_id:
                live.cancel_acked = True
            elif live.state == _PENDING:
                live.state = _ACKED
                self._report(live, ExecType.PARTIAL_FILL if live.cum else ExecType.NEW)
            return
        self.broadcast_rejects += 1
        reason = _REJECTS.get((txr.codespace, txr.code), RejectReason.NONE)
        self._rlog("reject", logging.WARNING, "dydx: %s %d refused by the validator: %s %d: %s",
                   "cancel" if cancel_id else "order", live.cl_ord_id, txr.codespace, txr.code,
                   txr.raw_log[:300])  # fmt: skip
        if cancel_id:
            self._report(live, ExecType.REJECTED, reason=reason, cl_ord_id=cancel_id)
        elif live.state != _FINAL:
            self._report(live, ExecType.REJECTED, reason=reason)
            self._finish(live)

    async def _stateful_worker(self) -> None:
        """Stateful transactions, one in flight, each with the next account sequence number.

        dYdX: stateful orders "require ... to be received in order otherwise they would fail";
        a mismatch (another client on the same account, a lost answer) is resynced and retried."""
        while True:
            await self._stateful_wake.wait()
            self._stateful_wake.clear()
            while self._stateful:
                type_url, message, live, cancel_id = self._stateful.popleft()
                try:
                    await self._send_stateful(type_url, message, live, cancel_id)
                except grpc.aio.AioRpcError as exc:
                    self._lost(live, cancel_id, exc)
                except Exception as exc:  # the queue must outlive any one transaction
                    self._rlog("stateful", logging.ERROR, "dydx: stateful transaction for order %d: %s: %s",
                               live.cl_ord_id, type(exc).__name__, exc)  # fmt: skip

    async def _send_stateful(self, type_url: bytes, message: bytes, live: _Live, cancel_id: int) -> None:
        for _attempt in range(3):
            tx = self._signer.sign(type_url, message, self.sequence)
            resp = await self._broadcast_rpc(broadcast_request(tx), timeout=self._timeout)
            txr = resp.tx_response
            if (txr.codespace, txr.code) != _WRONG_SEQUENCE:
                if txr.code == 0:
                    self.sequence += 1
                self._answer(txr, live, cancel_id)
                return
            await self._resync_sequence(txr.raw_log)
        self._answer(txr, live, cancel_id)

    async def _resync_sequence(self, raw_log: str) -> None:
        """After "account sequence mismatch, expected N, got M": N is the validator's CheckTx
        sequence (pending transactions included), else the chain's committed one (GetAccount)."""
        self.sequence_resyncs += 1
        before = self.sequence
        match = _EXPECTED_SEQ.search(raw_log)
        if match:
            self.sequence = int(match.group(1))
        else:
            await self._load_account()
        log.warning("dydx: account sequence resynced %d -> %d", before, self.sequence)

    # -- reports -----------------------------------------------------------------------------------
    def _report(
        self, live: _Live, et: ExecType, last_px: float = 0.0, last_qty: float = 0.0, *,
        reason: RejectReason = RejectReason.NONE, ts: int = 0, receipt: int = 0, liquidity: int = 0,
        cl_ord_id: int = 0, fee: float | None = None,
    ) -> None:  # fmt: skip
        cum = float(live.cum)
        leaves = float(live.size - live.cum) if et in (ExecType.NEW, ExecType.PARTIAL_FILL) else 0.0
        self.reports += 1
        self._listener.on_execution_report(ExecutionReport(
            cl_ord_id or live.cl_ord_id, live.client_id, next(self._exec_ids), live.symbol, live.side, et,
            last_px, last_qty, leaves, cum, reason, ts, receipt or time.time_ns(), liquidity, fee,
        ))  # fmt: skip

    def _finish(self, live: _Live) -> None:
        """Final: remembered ``RETAIN_S`` seconds for late fills and repeats, then forgotten."""
        live.state = _FINAL
        now = time.monotonic()
        retired = self._retired
        retired.append((now, live))
        while retired and retired[0][0] < now - RETAIN_S:
            old = retired.popleft()[1]
            if self._orders.get(old.cl_ord_id) is old:
                del self._orders[old.cl_ord_id]
            if self._by_uuid.get(old.uuid) is old:
                del self._by_uuid[old.uuid]


class _Resubscribe(Exception):
    """The indexer refused a subscription: drop the connection and start over (with backoff)."""


def _rpc_error(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


def _fill_fee(value: Any) -> float | None:
    """The indexer's ``fee`` of a fill: USDC (the quote of every dYdX perpetual), negative for a maker
    rebate. None when absent or not a finite number: the engine then charges its configured rates."""
    if value is None:
        return None
    try:
        fee = float(value)
    except (TypeError, ValueError):
        return None
    return fee if math.isfinite(fee) else None


def _iso_ns(text: str | None) -> int:
    """Nanoseconds since the epoch of an indexer time (``2024-08-12T14:06:01.172Z``); 0 if absent."""
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000) * 1_000_000
    except ValueError:
        return 0
