"""The ``latentspeed`` command: loads plugins first, so their subcommands show in ``--help``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import ConfigError
from .logs import setup_logging
from .plugins import PluginError, load_registry

log = logging.getLogger("latentspeed")


def _prescan(argv: list[str], flag: str) -> str | None:
    """Find ``--flag X`` / ``--flag=X`` anywhere, before the parser (which needs plugins) exists."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugins",
        metavar="NAMES",
        help="comma-separated plugins to load (default: $LATENTSPEED_PLUGINS, else all installed)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        type=str.lower,
        default=None,
        help="log level (overrides the config's log.level)",
    )


def build_parser(registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentspeed",
        description="latentspeed: plugin-based, low-latency crypto trading framework.",
    )
    parser.add_argument("--version", action="version", version=f"latentspeed {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(registry.commands):
        cmd = registry.commands[name]
        help_text = cmd.help if cmd.plugin == "core" else f"{cmd.help} [plugin: {cmd.plugin}]"
        p = sub.add_parser(name, help=help_text, description=cmd.help)
        _common(p)
        cmd.configure(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        registry = load_registry(_prescan(argv, "--plugins"))
    except PluginError as exc:
        print(f"latentspeed: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    cmd = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help()
        return 0
    args.registry = registry
    setup_logging(args.log_level or "info")
    try:
        return int(cmd.run(args) or 0)
    except (ConfigError, PluginError) as exc:
        print(f"latentspeed {cmd.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def marketstream_main() -> int:
    """``marketstream config.yml``: the seed's first executable."""
    return main(["marketstream", *sys.argv[1:]])


def engine_main() -> int:
    """``trading_engine_server --config trading_config.yml``: the seed's second executable."""
    return main(["engine", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
