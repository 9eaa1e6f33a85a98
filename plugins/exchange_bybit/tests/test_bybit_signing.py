"""Bybit v5 signing against the documented examples (fixtures/bybit/signing_v5_docs_example_NO_SECRET.json).

The docs publish the key (a placeholder), timestamp, recv window, payload, the string to sign and
its signature, but not the secret: the examples' signatures cannot be recomputed by anyone. What can
be checked, and is: our signature is HMAC-SHA256 (computed here independently of ``hmac``, from
``hashlib.sha256`` and the RFC 2104 pads) of exactly the documented string, in lower-case hex.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from latentspeed_exchange_bybit.signing import Signer, rest_signature, ws_auth_signature

from latentspeed_core.testing import fixtures_dir

DOC = json.loads((fixtures_dir() / "bybit" / "signing_v5_docs_example_NO_SECRET.json").read_text())
SECRETS = ["", "XXXXXXXXXX", "a-secret-of-36-characters-0123456789", "k" * 100]  # > 64 bytes: hashed first


def rfc2104_hmac_sha256(key: bytes, msg: bytes) -> str:
    """HMAC-SHA256 by the definition (RFC 2104): an implementation that shares nothing with ``hmac``."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).hexdigest()


@pytest.mark.parametrize("example", DOC["examples"], ids=lambda e: e["method"])
@pytest.mark.parametrize("secret", SECRETS)
def test_rest_signature_signs_exactly_the_documented_string(example, secret):
    payload = example.get("queryString", example.get("jsonBodyString"))
    sig = rest_signature(
        int(example["timestamp"]), example["api_key"], int(example["recv_window"]), payload, secret
    )
    assert sig == rfc2104_hmac_sha256(secret.encode(), example["string_to_sign"].encode())
    assert len(sig) == 64 and sig == sig.lower() and int(sig, 16) >= 0


def test_the_documented_signatures_need_the_unpublished_secret():
    """The docs' signature values are the same shape as ours but made with a secret nobody has."""
    for example in DOC["examples"]:
        doc_sig = example["example_signature_hmac"]
        assert len(doc_sig) == 64 and doc_sig == doc_sig.lower()
        payload = example.get("queryString", example.get("jsonBodyString"))
        ours = {rest_signature(int(example["timestamp"]), example["api_key"], int(example["recv_window"]), payload, s)
                for s in SECRETS}  # fmt: skip
        assert doc_sig not in ours


def test_ws_auth_signs_get_realtime_and_expires():
    assert DOC["ws_auth"]["string_to_sign"] == "GET/realtime{expires}"
    expires = DOC["ws_auth"]["request_example"]["args"][1]
    for secret in SECRETS:
        assert ws_auth_signature(expires, secret) == rfc2104_hmac_sha256(
            secret.encode(), f"GET/realtime{expires}".encode()
        )


def test_signer_headers_and_auth_message_have_the_documented_shape():
    example = DOC["examples"][0]
    signer = Signer(example["api_key"], "s3cr3t", int(example["recv_window"]))
    headers = signer.headers(int(example["timestamp"]), example["queryString"])
    assert sorted(headers) == sorted(DOC["headers"])
    assert headers["X-BAPI-SIGN"] == rfc2104_hmac_sha256(b"s3cr3t", example["string_to_sign"].encode())
    assert (headers["X-BAPI-TIMESTAMP"], headers["X-BAPI-RECV-WINDOW"]) == (
        example["timestamp"],
        example["recv_window"],
    )
    auth = json.loads(signer.ws_auth(1662350400000))
    doc = DOC["ws_auth"]["request_example"]
    assert auth["op"] == doc["op"] and [type(a) for a in auth["args"]] == [type(a) for a in doc["args"]]
    assert auth["args"][:2] == [example["api_key"], 1662350400000]
    assert auth["args"][2] == ws_auth_signature(1662350400000, "s3cr3t")
    assert "s3cr3t" not in repr(signer) and example["api_key"] not in repr(signer)
