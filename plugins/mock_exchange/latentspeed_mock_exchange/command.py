"""``latentspeed mock-exchange``: run the mock exchange until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from latentspeed_core.components import Command
from latentspeed_core.config import ConfigError, validate
from latentspeed_core.runtime import run_async, spin

from .config import MockExchangeConfig

log = logging.getLogger("latentspeed_mock_exchange")


def _configure(p: argparse.ArgumentParser) -> None:
    d = MockExchangeConfig()
    p.add_argument("--host", default=d.host, help="address to bind (default %(default)s: loopback only)")
    p.add_argument(
        "--port", type=int, default=d.port, help="TCP port; 0 picks a free one (default %(default)s)"
    )
    p.add_argument("--tick-rate", type=float, default=d.tick_rate, metavar="MS",
                   help="market-data period in milliseconds (default %(default)s)")  # fmt: skip
    p.add_argument("--fill-prob", type=float, default=d.fill_prob, metavar="PCT",
                   help="probability in percent that a marketable order fills (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--symbols", default=",".join(d.symbols), help="comma-separated symbols (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, logged)")
    p.add_argument("--depth", type=int, default=d.depth, help="book levels per side (default %(default)s)")
    p.add_argument("--no-log-orders", dest="log_orders", action="store_false",
                   help="do not log every order and fill (for benchmarks)")  # fmt: skip
    p.add_argument("--max-unsent-bytes", type=int, default=d.max_unsent_bytes, metavar="N",
                   help="disconnect a client with more unsent output than this (default %(default)s)")  # fmt: skip
    p.add_argument("--busy-poll", action="store_true",
                   help="spin the event loop instead of sleeping (uses a whole CPU; for benchmarks)")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> MockExchangeConfig:
    data = {
        "host": args.host,
        "port": args.port,
        "tick_rate": args.tick_rate,
        "fill_prob": args.fill_prob,
        "symbols": [s.strip() for s in args.symbols.split(",") if s.strip()],
        "seed": args.seed,
        "depth": args.depth,
        "log_orders": args.log_orders,
        "busy_poll": args.busy_poll,
        "max_unsent_bytes": args.max_unsent_bytes,
    }
    return validate(MockExchangeConfig, data, "command line")


async def _serve(cfg: MockExchangeConfig) -> None:
    from .server import MockExchange

    ex = MockExchange(cfg)
    await ex.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            pass
    spinner = asyncio.create_task(spin(), name="busy-poll") if cfg.busy_poll else None
    try:
        await stop.wait()
        log.info("signal received, shutting down")
    finally:
        if spinner is not None:
            spinner.cancel()
        await ex.stop()


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        run_async(_serve(cfg))
    except OSError as exc:
        # A port another process holds is the user's to change: the usage-error form and exit code (2).
        raise ConfigError(
            None, "--port", f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc} "
            "(another process listens there: choose a free --port, or 0 for any)",
        ) from None  # fmt: skip
    return 0


COMMAND = Command(
    "mock-exchange",
    "run the mock exchange (TCP binary protocol: market data, orders, fills)",
    _configure,
    _run,
)
