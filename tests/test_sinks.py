"""Sinks (register_sinks): the core's bounded handoff, writer thread, retries and drop counts.

A scripted destination stands for Redis here: it accepts, confirms part of a batch, or is away,
as each test says. The Redis plugin's own tests run the same machinery against a real Redis.
"""

from __future__ import annotations

import threading

import orjson
import pytest
import zmq

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.config import ConfigError
from latentspeed_core.marketstream.config import build_sinks, resolve
from latentspeed_core.marketstream.publisher import Publisher
from latentspeed_core.plugins import load_registry
from latentspeed_core.sink import Sink, SinkConfig, fan_out
from latentspeed_core.testing import free_port, wait_for


class Destination(Sink):
    """Stores what it is given; ``away`` refuses connections; ``confirm`` caps one write's answer."""

    def __init__(self, buffer: int = 1000, batch: int = 10) -> None:
        super().__init__("scripted", buffer, batch)
        self.stored: list[tuple[bytes, bytes]] = []
        self.batches: list[int] = []
        self.away = False
        self.confirm: int | None = None
        self.connects = 0
        self.gate = threading.Event()
        self.gate.set()

    def connect(self) -> None:
        if self.away:
            raise ConnectionRefusedError("away")
        self.connects += 1

    def write(self, batch):
        self.gate.wait(10)
        if self.away:
            return 0
        n = len(batch) if self.confirm is None else min(self.confirm, len(batch))
        self.confirm = None
        self.stored += batch[:n]
        self.batches.append(len(batch))
        return n


def msgs(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(b"T", b"%d" % i) for i in range(start, start + n)]


def test_put_only_queues_and_counts_what_does_not_fit():
    sink = Destination(buffer=3)  # not started: nothing takes from the queue
    for topic, data in msgs(5):
        sink.put(topic, data)
    assert (sink.buffered, sink.dropped, sink.written) == (3, 2, 0)
    sink.close(0.1)
    assert sink.unsent == 3


def test_everything_is_written_in_order_in_batches():
    sink = Destination(batch=10)
    sink.gate.clear()  # hold the writer so the queue fills: full batches
    sink.start()
    for m in msgs(95):
        sink.put(*m)
    sink.gate.set()
    wait_for(lambda: sink.written == 95, 10, "95 written")
    assert sink.stored == msgs(95) and max(sink.batches) == 10 and sum(sink.batches) == 95
    sink.close()
    assert sink.stats() == {"written": 95, "refused": 0, "dropped": 0, "buffered": 0, "unsent": 0,
                            "reconnects": 0, "connected": False}  # fmt: skip


def test_a_batch_confirmed_in_part_is_finished_after_reconnecting():
    sink = Destination(batch=10)
    sink.gate.clear()
    sink.start()
    for m in msgs(10):
        sink.put(*m)
    sink.confirm = 4  # the connection breaks after 4 replies
    sink.gate.set()
    wait_for(lambda: sink.written == 10, 10, "10 written")
    assert sink.stored == msgs(10) and sink.reconnects == 1 and sink.connects == 2
    sink.close()


def test_while_away_it_buffers_up_to_the_bound_counts_drops_then_catches_up(caplog):
    sink = Destination(buffer=20, batch=5)
    sink.start()
    for m in msgs(5):
        sink.put(*m)
    wait_for(lambda: sink.written == 5, 10, "5 written")
    sink.away = True
    for m in msgs(50, 5):
        sink.put(*m)  # returns at once: never waits for the destination
    wait_for(lambda: sink.reconnects == 1, 10, "the loss noticed")
    assert sink.dropped + sink.buffered == 50 and sink.buffered <= 20 + 5
    dropped = sink.dropped
    wait_for(lambda: f"{dropped} messages dropped so far" in caplog.text, 10, "the drops logged")
    sink.away = False
    wait_for(lambda: sink.buffered == 0, 20, "caught up")
    assert sink.stored == msgs(5) + msgs(50 - dropped, 5)  # the oldest kept, in order
    assert sink.written + sink.dropped == 55
    sink.close()


def test_close_flushes_what_it_can_and_counts_the_rest():
    sink = Destination(batch=10)
    sink.start()
    sink.away = True
    for m in msgs(30):
        sink.put(*m)
    wait_for(lambda: sink.reconnects >= 1, 10, "the loss noticed")
    sink.close(timeout=0.5)  # the destination never comes back: no waiting for it
    assert sink.unsent == 30 and sink.written == 0 and not sink._thread.is_alive()


def test_the_publisher_hands_each_sink_the_topic_and_the_bytes_it_sends():
    a, b = Destination(), Destination()
    for _ in range(20):
        try:
            pub = Publisher("127.0.0.1", free_port(), sinks=[a, b])
            break
        except zmq.ZMQError:
            continue
    try:
        book = {"exchange": "MOCK", "symbol": "BTC-USD", "seq": 1, "bids": [[1.0, 2.0]], "asks": [[1.5, 1.0]]}
        trade = {"exchange": "MOCK", "symbol": "BTC-USD", "seq": 1, "price": 1.25, "amount": 0.5}
        pub.publish_book("MOCK-preprocessed_book-BTC-USD", book)  # no subscriber: ZeroMQ drops it, sinks not
        pub.publish_trade("MOCK-preprocessed_trades-BTC-USD", trade)
    finally:
        pub.close()
    want = [(b"MOCK-preprocessed_book-BTC-USD", orjson.dumps(book)), (b"MOCK-preprocessed_trades-BTC-USD", orjson.dumps(trade))]
    assert list(a._queue) == want and list(b._queue) == want
    assert fan_out([]) is None and fan_out([a]) == a.put


# -- the hook and the config --------------------------------------------------------------
class ScriptedConfig(SinkConfig):
    where: str = "nowhere"


class ScriptedSinkPlugin:
    @staticmethod
    @hookimpl
    def register_sinks(register):
        register(Component("scripted", ScriptedConfig, lambda cfg: Destination(cfg.buffer, cfg.batch)))


def test_a_plugin_registers_a_sink_that_marketstream_configs_name_by_type():
    reg = load_registry(["mock"], extra=[ScriptedSinkPlugin])
    info = {p.name: p for p in reg.plugins}["ScriptedSinkPlugin"]
    assert info.hooks == ["register_sinks"] and info.components == {"sinks": ["scripted"]}
    data = {"feeds": [{"exchange": "mock"}], "sinks": [{"type": "scripted", "where": "here", "buffer": 7}]}
    setup = resolve(data, reg, "ms.yml")
    assert setup.sinks == [ScriptedConfig(type="scripted", where="here", buffer=7)]
    (sink,) = build_sinks(setup.sinks, reg)
    assert isinstance(sink, Destination) and sink._bound == 7
    with pytest.raises(ConfigError) as err:
        resolve({**data, "sinks": [{"type": "scripted", "buffer": 0}]}, reg, "ms.yml")
    assert "ms.yml: sinks[0].buffer: " in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve({**data, "sinks": [{"type": "kafka"}]}, reg, "ms.yml")
    assert "sinks[0].type: unknown sink 'kafka'; installed sinks: scripted" in str(err.value)
    assert "pip install latentspeed-sink-redis" in str(err.value)  # the shipped one, when not loaded
