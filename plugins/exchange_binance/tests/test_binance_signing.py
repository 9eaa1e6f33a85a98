"""Signing: the documented HMAC-SHA256 examples, and every request we build signs what the venue checks."""

from __future__ import annotations

import itertools
import json

import orjson
import pytest
from latentspeed_exchange_binance.execution import encode_order_cancel, encode_order_place
from latentspeed_exchange_binance.signing import Signer, hmac_signature, query_string, ws_payload

from latentspeed_core.testing import fixtures_dir

VECTORS = json.loads((fixtures_dir() / "binance" / "signing_hmac_sha256_test_vectors.json").read_text())
SECRET = VECTORS["secretKey"]
API_KEY = VECTORS["apiKey"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_rest_examples_from_the_docs(case):
    """fixtures/binance/signing_*: spot rest-api.md "SIGNED Endpoint Examples for POST /api/v3/order"."""
    assert hmac_signature(case["payload"], SECRET) == case["signature"]
    assert Signer(SECRET).sign(case["payload"].encode()) == case["signature"]


def test_the_mixed_example_is_query_string_then_body_without_separator():
    case = next(c for c in VECTORS["cases"] if c["name"] == "mixed_query_string_and_body")
    assert case["query_string"] + case["request_body"] == case["payload"]


def test_non_ascii_values_are_percent_encoded_before_signing():
    case = next(c for c in VECTORS["cases"] if c["name"] == "non_ascii_symbol_percent_encoded")
    params = [tuple(kv.split("=", 1)) for kv in case["unencoded_payload"].split("&")]
    assert query_string(params) == case["payload"]
    assert hmac_signature(query_string(params), SECRET) == case["signature"]


def test_signatures_are_lower_case_hex():
    sig = hmac_signature("anything", SECRET)
    assert len(sig) == 64 and sig == sig.lower() and int(sig, 16) >= 0


# web-socket-api.md, "SIGNED request example (HMAC)": the parameters sorted by name, values unencoded.
WS_EXAMPLES = [
    (
        {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
         "price": "52000.00", "recvWindow": 100, "timestamp": 1645423376532, "apiKey": API_KEY},
        "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=52000.00&quantity=0.01000000"
        "&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT",
        "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24",
    ),
    (
        {"symbol": "１２３４５６", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1.00000000",
         "price": "0.10000000", "recvWindow": 5000, "timestamp": 1645423376532, "apiKey": API_KEY},
        "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&price=0.10000000&quantity=1.00000000"
        "&recvWindow=5000&side=BUY&symbol=１２３４５６&timeInForce=GTC&timestamp=1645423376532&type=LIMIT",
        "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd",
    ),
]  # fmt: skip


@pytest.mark.parametrize("params,payload,signature", WS_EXAMPLES)
def test_websocket_api_examples_from_the_docs(params, payload, signature):
    assert ws_payload({**params, "signature": "ignored"}) == payload
    assert hmac_signature(payload, SECRET) == signature


def test_usdm_rest_example_from_the_docs():
    """USD-M "SIGNED Endpoint Examples for POST /fapi/v1/order - HMAC Keys", example 1."""
    payload = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    assert (
        hmac_signature(payload, secret) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )


def test_the_signer_never_shows_the_secret():
    s = Signer(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s)


def _check(frame: bytes, method: str) -> dict:
    """Decode a request as the venue does and check its signature with the generic rule."""
    msg = orjson.loads(frame)
    assert msg["method"] == method
    params = msg["params"]
    assert hmac_signature(ws_payload(params), SECRET) == params["signature"]
    return params


@pytest.mark.parametrize(
    "price,tif,reduce_only,ack,order_type",
    [
        *itertools.product(["61000.01"], ["GTC", "IOC", "GTX"], [False, True], [False, True], ["LIMIT"]),
        ("61000.01", None, False, True, "LIMIT_MAKER"),
        (None, None, False, True, "MARKET"),
        (None, None, True, False, "MARKET"),
    ],
)
def test_order_place_is_signed_over_its_sorted_parameters(price, tif, reduce_only, ack, order_type):
    frame = encode_order_place(
        "o7", API_KEY, Signer(SECRET), symbol="BTCUSDT", side="BUY", order_type=order_type, quantity="0.00100",
        client_id="lsabc_7", recv_window=5000, timestamp=1700000000123, price=price, time_in_force=tif,
        reduce_only=reduce_only, ack=ack,
    )  # fmt: skip
    params = _check(frame, "order.place")
    assert orjson.loads(frame)["id"] == "o7"
    assert params["newClientOrderId"] == "lsabc_7" and params["apiKey"] == API_KEY
    assert ("price" in params) == (price is not None) and ("timeInForce" in params) == (tif is not None)
    assert ("reduceOnly" in params) == reduce_only and ("newOrderRespType" in params) == ack


@pytest.mark.parametrize(
    "order_id,new_client_id", [(12345, None), (0, None), (12345, "lsabc_9"), (0, "lsabc_9")]
)
def test_order_cancel_is_signed_over_its_sorted_parameters(order_id, new_client_id):
    frame = encode_order_cancel(
        "c9_7", API_KEY, Signer(SECRET), symbol="BTCUSDT", recv_window=5000, timestamp=1700000000123,
        order_id=order_id, orig_client_id="lsabc_7", new_client_id=new_client_id,
    )  # fmt: skip
    params = _check(frame, "order.cancel")
    if order_id:
        assert params["orderId"] == order_id and "origClientOrderId" not in params
    else:
        assert params["origClientOrderId"] == "lsabc_7" and "orderId" not in params


@pytest.mark.parametrize("key_len", [0, 1, 32, 63, 64, 65, 200])
def test_the_keyed_signer_equals_hmac_for_any_key_length(key_len):
    import random

    rng = random.Random(key_len)
    secret = "".join(rng.choice("abcdefXYZ0123456789") for _ in range(key_len))
    signer = Signer(secret)
    for n in (0, 1, 63, 64, 65, 300, 5000):
        payload = "".join(rng.choice("abc=&XYZ019") for _ in range(n))
        assert signer.sign(payload.encode()) == hmac_signature(payload, secret)
