"""``latentspeed run``: the main job in one command.

No arguments: the embedded default, all in this process on loopback: a mock exchange on a
free port, the engine with in-process market data from it, and the ``market_maker``.
``--plugins VENUE,mock`` (a venue feed plugin and ``mock``): paper trading, the market maker
on that venue's live feed (its liquid default symbol) with the simulated venue ``paper``.
``--config FILE``: the engine config's feeds, venue and strategies; when the venue is the
mock exchange it is started here too, and books from any non-mock feed are pushed into it
(``MockExchange.set_book``), which is paper trading on live prices. (Any feed other than
the embedded exchange itself counts: a dYdX feed, or another mock exchange.)

A terminal gets a live rich dashboard; otherwise the STATS lines are printed. Either way a
summary follows at the end. Exit code 0; 1 when the run failed (no market data within
``market_data.startup_timeout``, the venue never connected, a task failed); 2 for a usage or
config error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from ..components import Command
from ..config import ConfigError
from ..logs import setup_logging
from .argtypes import float_above

log = logging.getLogger("latentspeed.run")

#: Strategy plugins the embedded default needs besides the core.
DEFAULT_PLUGINS = ("mock", "examples")

#: Paper trading with no --config: a liquid default market per venue feed plugin.
PAPER_DEFAULTS: dict[str, dict] = {
    "dydx": {"exchange": "dydx", "symbols": ["BTC-USD"]},
    "bybit": {"exchange": "bybit", "market": "linear", "symbols": ["BTC-USDT"]},
    "binance": {"exchange": "binance", "market": "spot", "symbols": ["BTC-USDT"]},
}


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="engine config (default: the embedded mock-exchange demo)"
    )
    p.add_argument("--duration", type=float_above(0), default=None, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--no-embedded-exchange",
        dest="embedded",
        action="store_false",
        help="with a mock venue: connect to a running mock exchange instead of starting one",
    )
    p.add_argument(
        "--record", metavar="FILE", help="also record every feed input to this capture (to backtest the session)"
    )
    p.add_argument(
        "--dashboard",
        choices=["auto", "on", "off"],
        default="auto",
        help="live dashboard (auto: on a terminal)",
    )


def default_config(port: int, symbols: list[str]) -> dict:
    """The embedded default: mock exchange on ``port``, market maker on ``symbols``."""
    return {
        "log": {"level": "info"},
        "market_data": {
            "window_size": 20,
            "depth_levels": 10,
            "feeds": [{"exchange": "mock", "host": "127.0.0.1", "port": port, "symbols": symbols}],
        },
        "venue": {"exchange": "mock", "host": "127.0.0.1", "port": port},
        "strategies": [
            {
                "name": "market_maker",
                "symbols": symbols,
                "params": {
                    "qty": 0.01,
                    "half_spread_bps": 1.5,
                    "skew_bps": 2,
                    "requote_bps": 3,
                    "max_position": 0.2,
                },
            }
        ],
        "risk": {
            "max_order_qty": 1.0,
            "max_notional": 100_000,
            "max_position": 5,
            "price_band_bps": 100,
            "max_orders_per_second": 200,
            "max_open_orders": 50,
            "max_loss": 10_000,
        },
        "fees": {"maker_bps": 0.0, "taker_bps": 0.0},
        "latency": {"file": None},
        "stats_interval": 2.0,
        "cancel_on_exit": True,
    }


def paper_config(feed: dict) -> dict:
    """Paper trading on one venue's live feed: the market maker, the ``paper`` venue, its defaults."""
    data = default_config(0, list(feed["symbols"]))
    data["market_data"]["feeds"] = [dict(feed)]
    data["venue"] = {"exchange": "paper", "queue_model": "risk_averse", "entry_latency_us": 1000,
                     "response_latency_us": 1000, "seed": 1}  # fmt: skip
    data["risk"]["price_band_bps"] = 50
    return data


def _paper_feed(args) -> dict | None:
    """The venue feed ``--plugins`` selects next to ``mock`` (no --config), or None for the mock demo."""
    from ..plugins import selected_names

    wanted = selected_names(args.plugins) or []
    venues = [p for p in wanted if p in PAPER_DEFAULTS]
    if not venues or "mock" not in wanted:
        return None
    if len(venues) > 1:
        raise ConfigError(None, "--plugins", f"paper trading without --config takes one venue, got {', '.join(venues)}; "
                          "write a config with the feeds you want (config/paper_*.yml)")  # fmt: skip
    return PAPER_DEFAULTS[venues[0]]


def _registry_for(args, data: dict):
    """The selected plugins, plus whichever installed plugins provide the strategies the config names.

    ``--plugins dydx,mock`` names the feed and venue plugins; the strategies come from the
    config, so their plugins load too.
    """
    from ..plugins import load_registry, selected_names

    wanted = selected_names(args.plugins)
    if wanted is None:
        return args.registry
    names = {s.get("name") for s in data.get("strategies") or [] if isinstance(s, dict)}
    missing = [n for n in names if n not in args.registry.strategies]
    if not missing:
        return args.registry
    everything = load_registry(None)
    extra = [everything.strategies[n].plugin for n in missing if n in everything.strategies]
    extra = [p for p in dict.fromkeys(extra) if p not in wanted and p != "core"]
    return load_registry([*wanted, *extra]) if extra else args.registry


def _run(args: argparse.Namespace) -> int:
    from ..config import load_yaml

    tty = sys.stdout.isatty()
    dashboard = args.dashboard == "on" or (args.dashboard == "auto" and tty)
    if not args.config and not args.embedded:
        raise ConfigError(None, "--no-embedded-exchange", "needs --config: without one there is no running "
                          "exchange to connect to (the default starts its own)")  # fmt: skip
    if getattr(args, "record", None):
        from .marketstream import output_problem

        if problem := output_problem(args.record):
            raise ConfigError(None, "--record", f"{args.record}: {problem}")
    data = load_yaml(args.config) if args.config else None
    paper_feed = _paper_feed(args) if data is None else None
    if paper_feed is not None:
        data = paper_config(paper_feed)
        args.config_name = f"<paper trading on {paper_feed['exchange']}>"
    registry = _registry_for(args, data) if data is not None else args.registry
    if data is None:
        for name in DEFAULT_PLUGINS:
            if name not in {p.name for p in registry.plugins}:
                from ..known_plugins import install_hint

                raise ConfigError(
                    None,
                    "",
                    f"the embedded default needs plugin {name!r} (installed and selected): "
                    f"{install_hint(name)}; or pass --config",
                )
    level = args.log_level or (data or {}).get("log", {}).get("level") or ("warning" if dashboard else "info")
    args.resolved_log_level = level
    setup_logging(level)  # the config's log file joins once its output directory is resolved
    from ..runtime import run_async

    summary = run_async(_main(args, registry, data, dashboard))
    _print_summary(summary, dashboard)
    if summary.get("error"):
        print(f"latentspeed run: error: {summary['error']}", file=sys.stderr)
        return 1
    return 0


async def _main(args, registry, data: dict | None, dashboard: bool, on_start=None) -> dict:
    """Start the embedded exchange (if any) and the engine; ``on_start(runner, exchange)`` is for embedders."""
    from ..engine.config import resolve
    from ..engine.runner import EngineRunner

    exchange = None
    source_name = getattr(args, "config_name", None) or args.config
    if data is None:
        exchange = await _start_exchange(registry, 0, ["BTC-USD", "ETH-USD"])
        setup = resolve(default_config(exchange.port, ["BTC-USD", "ETH-USD"]), registry, "<embedded default>")
    else:
        setup = resolve(data, registry, source_name)
        if setup.log_file:
            Path(setup.log_file).parent.mkdir(parents=True, exist_ok=True)
            setup_logging(getattr(args, "resolved_log_level", None) or setup.config.log.level, setup.log_file)
        if setup.output_dir is not None:
            log.warning("run outputs in %s/", setup.output_dir)
        if setup.config.venue.exchange.lower() == "mock" and args.embedded:
            symbols = sorted({s for st in setup.strategies for s in st.symbols})
            exchange = await _start_exchange(registry, setup.venue.port, symbols, setup.venue.host, source_name)
    listeners = []
    if exchange is not None and any(not _is_exchange(f, exchange) for f in setup.feeds):
        # Paper trading: the exchange prices (and fills) from the live books.
        set_book = exchange.set_book

        # set_book re-prices the exchange at once, so the strategies can see every book: an
        # order they send on it matches against this very book. (The strategies' symbols are
        # defined by the exchange from its start, so the venue always knows them.)
        def paper(msg: dict) -> None:
            set_book(msg["symbol"], msg["bids"], msg["asks"])

        listeners.append(paper)
        log.info("paper trading: the mock exchange takes its books from %s", ",".join(setup.feed_names))

    def on_stats(engine) -> None:
        if not dashboard:
            print(engine.stats_line(), flush=True)

    # Without a dashboard the STATS lines go to stdout (for scripts), so the engine does not log
    # them too: each appears once.
    runner = EngineRunner(setup, registry, book_listeners=listeners, on_stats=on_stats, log_stats=dashboard)
    recorder = None
    if getattr(args, "record", None):
        from ..capture import Recorder, feed_config_record

        feeds = getattr(runner.source, "feeds", [])
        recorder = Recorder(args.record, feeds=[f.name for f in feeds],
                            feed_configs={f.name: feed_config_record(f.config) for f in feeds})  # fmt: skip
        for f in feeds:
            f.recorder = recorder
        log.info("recording every feed input to %s", args.record)
    if on_start is not None:
        on_start(runner, exchange)
    ui = asyncio.create_task(_dashboard(runner)) if dashboard else None
    try:
        summary = await runner.run(args.duration)
    finally:
        if recorder is not None:
            recorder.close()
        if ui is not None:
            ui.cancel()
            await asyncio.gather(ui, return_exceptions=True)
        if exchange is not None:
            await exchange.stop()  # logs its final stats line itself
    if exchange is not None:
        summary["exchange"] = exchange.stats_line()  # the same line: one count, one source
    if setup.output_dir is not None:
        summary["outputs"] = str(setup.output_dir)
    return summary


def _is_exchange(feed, exchange) -> bool:
    """Is this feed the embedded exchange itself (rather than a price source for it)?"""
    return feed.exchange.lower() == "mock" and getattr(feed, "port", None) == exchange.port


async def _start_exchange(registry, port: int, symbols: list[str], host: str = "127.0.0.1", file=None):
    """The mock plugin's exchange in this process, found through the registry (the core imports no plugin)."""
    from ..plugins import PluginError

    try:
        start = registry.get("venues", "mock").extras["embedded_exchange"]
    except (PluginError, KeyError):
        from ..known_plugins import install_hint

        raise ConfigError(file, "venue", f"the embedded mock exchange needs plugin 'mock': {install_hint('mock')}") from None
    try:
        return await start(host, port, symbols)
    except OSError as exc:
        hint = "; to use an exchange already running there, pass --no-embedded-exchange" if file else ""
        raise ConfigError(
            file,
            "venue.port",
            f"cannot start the embedded mock exchange on {host}:{port}: {exc.strerror or exc}{hint}",
        ) from None


# -- dashboard -----------------------------------------------------------------------------


async def _dashboard(runner) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    t0 = time.monotonic()
    with Live(_render(runner, t0, console.width), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            await asyncio.sleep(0.25)
            live.update(_render(runner, t0, console.width))


def _render(runner, t0: float, width: int = 120):
    """The dashboard for a terminal ``width`` columns wide: side by side where it fits, else stacked."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    e = runner.engine
    book_tables = []
    for sym in e.symbols:
        msg = e.books.get(sym)
        t = Table(title=sym, show_header=True, header_style="bold", box=None)
        t.add_column("bid qty", justify="right")
        t.add_column("bid", justify="right", style="green")
        t.add_column("ask", justify="right", style="red")
        t.add_column("ask qty", justify="right")
        if msg:
            for (bp, bq), (ap, aq) in zip(msg["bids"][:5], msg["asks"][:5], strict=False):
                t.add_row(f"{bq:g}", f"{bp:,.2f}", f"{ap:,.2f}", f"{aq:g}")
        book_tables.append(t)
    # A book table of BTC prices needs ~40 columns: as many per row as the terminal holds.
    per_row = max(1, min(len(book_tables), (width - 4) // 44)) if book_tables else 1
    books = Table.grid(padding=(0, 3))
    for i in range(0, len(book_tables), per_row):
        books.add_row(*book_tables[i : i + per_row])
    pos = Table(box=None, title="Positions", header_style="bold")
    for col in ("symbol", "qty", "avg", "mark", "realized", "unrealized", "fills"):
        pos.add_column(col, justify="right")
    for sym, p in e.portfolio.positions.items():
        pos.add_row(
            sym, f"{p.qty:g}", f"{p.avg_price:,.2f}", f"{p.mark:,.2f}", f"{p.realized:,.2f}", f"{p.unrealized:,.2f}",
            str(p.fills),
        )  # fmt: skip
    orders = Table(box=None, title=f"Open orders ({len(e.orders.open)})", header_style="bold")
    # A simulated venue estimates how much visible size is ahead of each resting quote.
    queue_ahead = getattr(e.venue, "queue_ahead", None)
    for col in ("id", "symbol", "side", "qty", "price", "status") + (("ahead",) if queue_ahead else ()):
        orders.add_column(col, justify="right")
    for o in list(e.orders.open.values())[-8:]:
        row = [str(o.cl_ord_id), o.symbol, o.side.name, f"{o.qty:g}", f"{o.price:,.2f}", o.status_name]
        if queue_ahead:
            ahead = queue_ahead(o.cl_ord_id)
            row.append("-" if ahead is None else f"{ahead:g}")
        orders.add_row(*row)
    fills = Table(box=None, title="Recent fills", header_style="bold")
    for col in ("id", "symbol", "side", "qty", "price"):
        fills.add_column(col, justify="right")
    for f in list(e.recent_fills)[-8:]:
        fills.add_row(str(f.cl_ord_id), f.symbol, f.side.name, f"{f.qty:g}", f"{f.price:,.2f}")
    p50, p99, p999 = e.t2t.percentiles_us(50, 99, 99.9)
    r50, r99 = e.round_trip.percentiles_us(50, 99)
    status = "[green]trading[/]" if e.trading_enabled else f"[red]halted: {escape(str(e.halt_reason))}[/]"
    venue = "[green]connected[/]" if e.venue.connected else "[red]disconnected[/]"
    head = (
        f"[bold]latentspeed run[/]  {time.monotonic() - t0:6.1f}s  venue {venue}  {status}\n"
        f"rx {e.rx_packets}  orders {e.orders_sent}  fills {e.fills}  "
        f"rejects {e.risk_rejects} risk / {e.venue_rejects} venue / {e.orders.cancel_rejects} cancel  "
        f"PnL [bold]{e.portfolio.pnl:,.2f}[/] (realized {e.portfolio.realized - e.portfolio.fees:,.2f})\n"
        f"tick-to-trade µs p50 {p50} p99 {p99} p99.9 {p999}   order round trip µs p50 {r50} p99 {r99}"
    )
    lower = Table.grid(padding=(0, 2))
    if width >= 110:
        lower.add_row(orders, fills)
    else:
        lower.add_row(orders)
        lower.add_row(fills)
    return Panel(Group(head, books, pos, lower), title="latentspeed", border_style="blue")


def _print_summary(summary: dict, rich_table: bool) -> None:
    if not rich_table:
        from .engine import print_summary

        print_summary(summary)
        if summary.get("exchange"):
            print(f"SUMMARY mock exchange: {summary['exchange']}", flush=True)
        if summary.get("outputs"):
            print(f"SUMMARY outputs: {summary['outputs']}/", flush=True)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="latentspeed run: summary", header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t2t, rt = summary["t2t_us"], summary["round_trip_us"]
    rows = [
        ("duration (s)", summary["duration_s"]),
        ("market-data messages", summary["rx_packets"]),
        ("orders", summary["orders"]),
        ("fills", summary["fills"]),
        ("rejects (risk / venue / cancel)",
         f"{summary['risk_rejects']} / {summary['venue_rejects']} / {summary['cancel_rejects']}"),  # fmt: skip
        ("positions", ", ".join(f"{s} {q:g}" for s, q in summary["positions"].items())),
        ("PnL (realized / unrealized)", f"{summary['pnl']:.2f} ({summary['realized_pnl']:.2f} / {summary['unrealized_pnl']:.2f})"),
        ("tick-to-trade µs p50 / p99 / p99.9", f"{t2t['p50']} / {t2t['p99']} / {t2t['p999']}"),
        ("order round trip µs p50 / p99", f"{rt['p50']} / {rt['p99']}"),
        ("stopped because", summary["stop_reason"]),
    ]  # fmt: skip
    if summary.get("exchange"):
        rows.append(("mock exchange", summary["exchange"]))
    if summary.get("outputs"):
        rows.append(("run outputs", summary["outputs"] + "/"))
    for k, v in rows:
        t.add_row(k, escape(str(v)))  # a stop reason or exchange summary is text, not markup
    Console().print(t)


COMMAND = Command(
    "run",
    "run the main job: mock exchange + engine + market maker (or a config) with a live dashboard",
    _configure,
    _run,
)
