"""``zmq.sndhwm`` and ``zmq.slow_subscriber``: a subscriber that never reads costs bounded memory.

Real XPUB/SUB sockets on loopback. The fast subscriber is read in lockstep (publish one
message, wait for it with ``poll``), so nothing here depends on timing; the slow one is
connected and subscribed and never reads until the end.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
import zmq

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.marketstream.config import MarketstreamConfig
from latentspeed_core.marketstream.publisher import DEFAULT_SNDHWM, Publisher

FEEDS = [{"exchange": "mock", "symbols": ["BTC-USD"]}]
TOTAL = 3000
#: 20 kB messages fill the kernel's socket buffers after a few hundred messages.
PAD = "x" * 20_000
HWM = 100


def test_sndhwm_and_slow_subscriber_defaults_and_validation():
    cfg = validate(MarketstreamConfig, {"feeds": FEEDS}, "ms.yml")
    assert cfg.zmq.sndhwm == DEFAULT_SNDHWM == 1_000
    assert cfg.zmq.slow_subscriber == "isolate"
    cfg = validate(
        MarketstreamConfig, {"feeds": FEEDS, "zmq": {"sndhwm": 5, "slow_subscriber": "drop_all"}}, "ms.yml"
    )
    assert (cfg.zmq.sndhwm, cfg.zmq.slow_subscriber) == (5, "drop_all")
    for bad in (0, -1, "lots", 1.5):
        with pytest.raises(ConfigError) as err:
            validate(MarketstreamConfig, {"feeds": FEEDS, "zmq": {"sndhwm": bad}}, "ms.yml")
        assert err.value.path == "zmq.sndhwm"
    with pytest.raises(ConfigError) as err:
        validate(MarketstreamConfig, {"feeds": FEEDS, "zmq": {"slow_subscriber": "block"}}, "ms.yml")
    assert err.value.path == "zmq.slow_subscriber"
    with pytest.raises(ValueError, match="slow_subscriber"):
        Publisher("127.0.0.1", 1, slow_subscriber="block")


@pytest.fixture
def sockets(procs, request):
    """A publisher with a tiny queue, a fast subscriber and a never-reading slow one (books port)."""
    pub = Publisher(
        "127.0.0.1", procs.free_port_pair(), sndhwm=HWM, linger_ms=0, slow_subscriber=request.param
    )
    ctx = zmq.Context()
    subs = []
    for rcvhwm, rcvbuf in ((1, 4096), (10_000, None)):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.RCVHWM, rcvhwm)
        if rcvbuf:
            s.setsockopt(zmq.RCVBUF, rcvbuf)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{pub.port + 1}")
        subs.append(s)
    try:
        assert asyncio.run(pub.wait_subscribers(2, 10, sockets=("books",)))
        yield pub, subs[0], subs[1]
    finally:
        for s in subs:
            s.close()
        ctx.term()
        pub.close()


def _seq(sock: zmq.Socket) -> int:
    return orjson.loads(sock.recv_multipart()[1])["seq"]


def _drain(sock: zmq.Socket) -> list[int]:
    seqs = []
    while sock.poll(300):
        seqs.append(_seq(sock))
    return seqs


def _publish(pub: Publisher, fast: zmq.Socket) -> tuple[list[int], list[int]]:
    """Publish TOTAL books; the fast subscriber reads each one it was sent before the next."""
    dropped, got = [], []
    for seq in range(1, TOTAL + 1):
        ok = pub.publish_book("MOCK-preprocessed_book-BTC-USD", {"seq": seq, "pad": PAD})
        if not ok:
            dropped.append(seq)
        if ok or pub.isolate:
            assert fast.poll(10_000), f"message {seq} never reached the fast subscriber"
            got.append(_seq(fast))
    return dropped, got


@pytest.mark.parametrize("sockets", ["isolate"], indirect=True)
def test_isolate_a_never_reading_subscriber_costs_only_itself_and_its_queue_is_bounded(sockets):
    pub, slow, fast = sockets
    dropped, got = _publish(pub, fast)
    assert got == list(range(1, TOTAL + 1))  # the fast subscriber missed nothing
    assert dropped and pub.book_drops == len(dropped)  # the full queue was seen and counted
    assert pub.books_sent + pub.book_drops == TOTAL
    # What the slow subscriber gets at last is its queue and the kernel's buffers, not TOTAL:
    # the rest was dropped, not queued (publisher memory stays bounded).
    slow_seqs = _drain(slow)
    assert slow_seqs == sorted(slow_seqs) and slow_seqs[0] == 1
    assert len(slow_seqs) < TOTAL // 2
    # isolate counts a lower bound: at least one message per time the queue was found full.
    assert TOTAL - len(slow_seqs) >= pub.book_drops


@pytest.mark.parametrize("sockets", ["drop_all"], indirect=True)
def test_drop_all_counts_every_drop_exactly(sockets):
    pub, slow, fast = sockets
    dropped, got = _publish(pub, fast)
    assert dropped and pub.book_drops == len(dropped)
    assert sorted(set(got) | set(dropped)) == list(range(1, TOTAL + 1)) and not set(got) & set(dropped)
    slow_seqs = _drain(slow)
    assert set(slow_seqs) <= set(got) and len(slow_seqs) < TOTAL // 2
