"""`latentspeed record`: every raw frame of every feed, with receipt time and feed name."""

from __future__ import annotations

import re

from latentspeed_core.capture import capture_header, read_capture


def test_record_writes_a_replayable_capture(procs, mock_exchange, tmp_path):
    cfg = tmp_path / "rec.yml"
    cfg.write_text(
        "log: {file: null}\nfeeds:\n"
        f"  - {{exchange: mock, port: {mock_exchange}, symbols: [BTC-USD]}}\n"
        f"  - {{exchange: mock, port: {mock_exchange}, symbols: [ETH-USD]}}\n"
    )
    out = tmp_path / "c.jsonl.gz"
    p = procs.start("record", str(cfg), "--out", str(out), "--duration", "1.5")
    assert p.wait(30) == 0, p.stderr
    assert capture_header(out)["feeds"] == ["mock#0", "mock#1"]  # names per contracts.md
    recs = list(read_capture(out))
    for name in ("mock#0", "mock#1"):
        mine = [r for r in recs if r["feed"] == name]
        assert mine[0]["kind"] == "connect"
        frames = [r for r in mine if r["kind"] == "frame"]
        assert len(frames) > 50 and all(isinstance(r["data"], bytes) for r in frames)
        stamps = [r["receipt_ns"] for r in mine]
        assert stamps == sorted(stamps) and stamps[0] > 1_600_000_000 * 10**9
    m = re.search(r"capture .*: (\d+) records", p.stderr)
    assert m and int(m.group(1)) == len(recs)


def test_record_follows_the_extension(procs, mock_exchange, tmp_path):
    """``--out x.jsonl`` is plain JSON lines, ``--out x.jsonl.gz`` gzip; both read back the same way."""
    cfg = tmp_path / "rec.yml"
    cfg.write_text(
        f"log: {{file: null}}\nfeeds:\n  - {{exchange: mock, port: {mock_exchange}, symbols: [BTC-USD]}}\n"
    )
    for name, gzipped in (("plain.jsonl", False), ("packed.jsonl.gz", True)):
        out = tmp_path / name
        p = procs.start("record", str(cfg), "--out", str(out), "--duration", "1")
        assert p.wait(30) == 0, p.stderr
        assert out.read_bytes().startswith(b"\x1f\x8b") == gzipped, name
        if not gzipped:
            assert out.read_text().splitlines()[0].startswith('{"kind":"header"')
        assert capture_header(out)["feeds"] == ["mock"]
        assert any(r["kind"] == "frame" for r in read_capture(out))


def test_an_output_path_that_cannot_be_a_file_is_refused_before_anything_starts(run_cli, tmp_path):
    """record, marketstream and run: a directory or a missing directory, one line, exit 2, at once."""
    cfg = tmp_path / "ms.yml"
    cfg.write_text("feeds:\n  - {exchange: mock, port: 1, symbols: [BTC-USD]}\n")  # never reached
    missing = tmp_path / "no" / "such" / "dir" / "c.jsonl.gz"
    cases = [
        (("record", str(cfg), "--out"), "--out"),
        (("marketstream", str(cfg), "--record"), "--record"),
        (("run", "--record"), "--record"),
    ]
    for argv, opt in cases:
        for path, says in ((tmp_path, "is a directory"), (missing, "directory does not exist")):
            proc = run_cli(*argv, str(path), timeout=30)
            assert proc.returncode == 2, (argv, proc.stderr)
            last = proc.stderr.strip().splitlines()[-1]
            assert opt in last and f"{path}: {says}" in last and "Traceback" not in proc.stderr, proc.stderr
