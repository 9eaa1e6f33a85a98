"""Captures to Parquet for research: the messages marketstream would publish, as columns.

The capture is replayed through the live feed code and the marketstream Pipeline (the same
features), and every book and trade message becomes a row: ``books.parquet`` has the
timestamps, the symbol, the top-N levels as ``bid_px_0``, ``bid_qty_0``, ... columns and every
feature; ``trades.parquet`` every field of the trade messages. Rows are written in batches,
so memory stays flat on a long capture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .capture import capture_header, deliver, merged_records
from .config import ConfigError, FeedConfig, validate

log = logging.getLogger("latentspeed.export")

#: Rows per Parquet row group (and per batch held in memory).
BATCH = 50_000


@dataclass
class ExportResult:
    books: int = 0
    trades: int = 0
    inputs: int = 0
    books_path: Path | None = None
    trades_path: Path | None = None


def feed_configs_of(capture: str | Path, registry, config: dict | None = None, file=None) -> list[FeedConfig]:
    """The feeds that recorded ``capture``: from its header, else from a marketstream/engine config."""
    entries: list[dict] = []
    if config is not None:
        entries = config.get("feeds") or (config.get("market_data") or {}).get("feeds") or []
        if not entries:
            raise ConfigError(file, "feeds", "the config has no feeds (marketstream feeds or market_data.feeds)")
    else:
        header = capture_header(capture)
        stored = header.get("feed_configs") or {}
        if not stored:
            raise ConfigError(None, "--config", f"{capture} does not record its feed configs (an older capture): "
                              "give --config with the feeds that recorded it")  # fmt: skip
        entries = [{**cfg, "_name": name} for name, cfg in stored.items()]
    out = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        name = entry.pop("_name", None)
        comp = registry.get("feeds", str(entry.get("exchange", "")).lower())
        cfg = validate(comp.config_model, {**entry, "replay": str(capture)}, file, prefix=f"feeds[{i}]")
        out.append((cfg, name))
    return out


def export_capture(
    capture: str | Path,
    out_dir: str | Path,
    registry,
    *,
    config: dict | None = None,
    file=None,
    window_size: int = 20,
    depth_levels: int = 10,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Replay ``capture`` through its feeds and features; write books.parquet and trades.parquet."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from .known_plugins import extra_hint

        raise ConfigError(None, "--format", f"Parquet needs pyarrow: {extra_hint('analysis')}") from None
    from .marketstream.config import build_feeds
    from .marketstream.features import build_calculators
    from .marketstream.pipeline import Pipeline

    pairs = feed_configs_of(capture, registry, config, file)
    from .engine.config import feed_names

    cfgs = [c for c, _ in pairs]
    names = [n or d for (_c, n), d in zip(pairs, feed_names(cfgs), strict=True)]
    feeds = build_feeds(cfgs, names, registry)
    by_name = {f.name: f for f in feeds}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(books_path=out / "books.parquet", trades_path=out / "trades.parquet")
    rows: dict[str, list[dict]] = {"books": [], "trades": []}
    paths = {"books": result.books_path, "trades": result.trades_path}
    writers: dict[str, pq.ParquetWriter] = {}
    counts = {"books": 0, "trades": 0}

    def flush(kind: str) -> None:
        batch = rows[kind]
        if not batch:
            return
        w = writers.get(kind)
        if w is None:  # the schema from the first row: every batch then has the same columns
            w = writers[kind] = pq.ParquetWriter(paths[kind], _schema(batch[0]))
        w.write_table(pa.Table.from_pylist(batch, schema=w.schema))
        counts[kind] += len(batch)
        batch.clear()

    def emit_book(topic: str, msg: dict) -> None:
        books = rows["books"]
        books.append(book_row(msg, depth_levels))
        if len(books) >= BATCH:
            flush("books")

    def emit_trade(topic: str, msg: dict) -> None:
        trades = rows["trades"]
        trades.append(msg)
        if len(trades) >= BATCH:
            flush("trades")

    pipeline = Pipeline(window_size, depth_levels, build_calculators(registry, window_size, depth_levels), emit_book,
                        emit_trade)  # fmt: skip
    for f in feeds:
        f.sink = pipeline
    n = 0
    try:
        for t, name, rec in merged_records([(f.name, capture) for f in feeds]):
            deliver(by_name[name], rec, t)
            n += 1
            if progress is not None and not n % 8192:
                progress(n)
        flush("books")
        flush("trades")
    finally:
        for w in writers.values():
            w.close()
    result.inputs = n
    result.books, result.trades = counts["books"], counts["trades"]
    # Nothing of a kind: no file, rather than an empty one without columns.
    result.books_path = paths["books"] if "books" in writers else None
    result.trades_path = paths["trades"] if "trades" in writers else None
    if progress is not None:
        progress(n)
    return result


#: Integer fields of the message contract (docs/messages.md); other numbers are float64.
_INT_FIELDS = frozenset(("timestamp_ns", "receipt_timestamp_ns", "seq", "window_size", "schema_version"))


def _schema(row: dict):
    import pyarrow as pa

    fields = []
    for k, v in row.items():
        if isinstance(v, str):
            t = pa.string()
        elif isinstance(v, bool):
            t = pa.bool_()
        elif k in _INT_FIELDS:
            t = pa.int64()
        else:
            t = pa.float64()
        fields.append(pa.field(k, t))
    return pa.schema(fields)


def book_row(msg: dict, depth: int) -> dict:
    """A book message as one flat row: levels as ``bid_px_i``/``bid_qty_i``/``ask_px_i``/``ask_qty_i``."""
    row = {k: v for k, v in msg.items() if k not in ("bids", "asks")}
    bids, asks = msg["bids"], msg["asks"]
    for side, levels in (("bid", bids), ("ask", asks)):
        for i in range(depth):
            px, qty = levels[i] if i < len(levels) else (None, None)
            row[f"{side}_px_{i}"] = px
            row[f"{side}_qty_{i}"] = qty
    return row
