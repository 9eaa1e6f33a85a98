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


def test_tap_without_a_publisher_says_what_it_waits_for(procs):
    """No marketstream: tap names the address and topics at once, then says "no messages yet"."""
    from latentspeed_core.testing import free_port

    port = free_port()
    tap = procs.start("tap", "--port", str(port), "--topic", "MOCK-", "--count", "1")
    first = tap.wait_line("tap: subscribed")
    assert f"tcp://127.0.0.1:{port} (trades)" in first and f":{port + 1} (books)" in first
    assert "topics MOCK-" in first and "waiting for messages" in first
    notice = tap.wait_line("no messages yet", timeout=20)  # a plain line: stderr is not a terminal
    assert f"tcp://127.0.0.1:{port}" in notice and "is a marketstream publishing there" in notice
    assert tap.stop() == 0 and tap.stdout == ""


def test_a_port_that_is_not_one_is_refused_at_once(run_cli):
    for bad, says in (("99999", "99999 is out of range (1..65534"), ("65535", "books are on PORT+1"), ("http", "not an integer")):
        proc = run_cli("tap", "--port", bad, "--count", "1", timeout=30)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr


def test_waiting_status_on_a_terminal_and_in_the_live_table():
    """On a terminal the wait is a rich status (stderr) or the live table's caption (stdout)."""
    import argparse
    import asyncio
    import io

    from rich.console import Console

    from latentspeed_core.commands import tap as tap_cmd

    args = argparse.Namespace(host="127.0.0.1", port=5556, topic=["A[b]-"], count=None)

    async def scenario() -> str:
        t = tap_cmd._Tap(args, "lines")
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=200)
        task = asyncio.create_task(tap_cmd.report_waiting(t, console))
        from latentspeed_core.testing import async_wait_for

        await async_wait_for(lambda: "no messages yet" in out.getvalue(), 10, "the waiting status")
        assert not task.done()
        t._tick()  # the first message ends the status
        await asyncio.wait_for(task, 5)
        return out.getvalue()

    shown = asyncio.run(scenario())
    assert "no messages yet" in shown and "A[b]-" in shown  # escaped, not eaten as markup

    live = tap_cmd._Tap(args, "live")
    text = io.StringIO()
    Console(file=text, width=300).print(live.table())
    caption = " ".join(text.getvalue().split())  # the caption wraps at the table's width
    assert "no messages yet" in caption and "topics A[b]-" in caption
