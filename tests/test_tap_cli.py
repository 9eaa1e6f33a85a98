"""`latentspeed tap` against a real marketstream on the mock feed: JSON lines, readable lines, prefixes."""

from __future__ import annotations

import signal

import orjson


def start_marketstream(procs, tmp_path, mock_port):
    port = procs.free_port_pair()
    cfg = tmp_path / "ms.yml"
    cfg.write_text(
        f"zmq: {{port: {port}}}\nlog: {{file: null}}\nfeeds:\n  - {{exchange: mock, port: {mock_port}, symbols: [BTC-USD]}}\n"
    )
    ms = procs.start("marketstream", str(cfg), "--wait-subscribers", "1")
    ms.wait_line("waiting for 1 subscriber")
    return ms, port


def test_tap_json_lines_and_readable_lines(procs, mock_exchange, tmp_path, ms_ref):
    ms, port = start_marketstream(procs, tmp_path, mock_exchange)
    tap = procs.start("tap", "--port", str(port), "--json", "--count", "40")
    assert tap.wait(30) == 0, tap.stderr
    lines = tap.stdout.splitlines()
    assert len(lines) == 40
    books = [orjson.loads(x) for x in lines if '"bids"' in x]
    assert books and all(list(b) == ms_ref.BOOK_KEYS for b in books)
    assert {b["symbol"] for b in books} == {"BTC-USD"}

    tap = procs.start("tap", "--port", str(port), "--topic", "MOCK-preprocessed_book-", "--count", "5")
    assert tap.wait(30) == 0, tap.stderr
    out = tap.stdout.splitlines()
    assert len(out) == 5 and all(x.startswith("BOOK  MOCK BTC-USD seq=") for x in out)
    assert all("spread=" in x and "bps" in x and "imb=" in x and "ofi=" in x for x in out)

    tap = procs.start("tap", "--port", str(port), "--topic", "NOPE-", "--count", "1")
    tap.wait_line("tap: subscribed")
    assert tap.stop() == 0  # Ctrl-C with nothing received: a clean exit
    assert tap.stdout == ""
    ms.popen.send_signal(signal.SIGTERM)  # SIGTERM, like systemd: sockets closed, exit 0
    assert ms.wait() == 0, ms.stderr
    assert "STATS feed=mock" in ms.stderr and "marketstream stopped" in ms.stderr
