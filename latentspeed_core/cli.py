"""The ``latentspeed`` command: loads plugins first, so their subcommands show in ``--help``."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading

from . import __version__, known_plugins
from .capture import CaptureError
from .config import ConfigError
from .logs import setup_logging
from .plugins import CORE_PLUGIN, PluginError, installed_entry_points, load_registry, selected_names

log = logging.getLogger("latentspeed")


def _prescan(argv: list[str], flag: str) -> str | None:
    """Find ``--flag X`` / ``--flag=X`` anywhere, before the parser (which needs plugins) exists."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _common(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--plugins`` and ``--log-level``, accepted before or after any (nested) subcommand.

    Below the top level the default is SUPPRESS: argparse copies a subparser's defaults over
    the parent's values, so ``latentspeed --log-level debug run`` would otherwise lose it.
    """
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--plugins",
        metavar="NAMES",
        default=default,
        help="comma-separated plugins to load (default: $LATENTSPEED_PLUGINS, else all installed)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        type=str.lower,
        default=default,
        help="log level (overrides the config's log.level)",
    )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of ``parser``'s subcommands (``config`` -> ``validate``), if it has any."""
    return [
        p
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for p in dict.fromkeys(action.choices.values())
    ]


def _common_everywhere(parser: argparse.ArgumentParser) -> None:
    """Add the common options to ``parser`` and to every subcommand below it."""
    _common(parser)
    for sub in _subparsers(parser):
        _common_everywhere(sub)


def build_parser(registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentspeed",
        description="latentspeed: plugin-based, low-latency crypto trading framework.",
    )
    parser.add_argument("--version", action="version", version=f"latentspeed {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(registry.commands):
        cmd = registry.commands[name]
        help_text = cmd.help if cmd.plugin == "core" else f"{cmd.help} [plugin: {cmd.plugin}]"
        p = sub.add_parser(name, help=help_text, description=cmd.help)
        cmd.configure(p)
        _common_everywhere(p)
        p.set_defaults(_command=cmd)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The subcommand the user typed: the first word that is not a top-level option or its value."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--plugins", "--log-level"):
            i += 2
            continue
        if not arg.startswith("-"):
            return arg
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        i += 1
    return None


def missing_command_hint(name: str, registry, plugins: str | None = None) -> str | None:
    """Why ``name`` is not a command when a plugin would provide it: deselected, or not installed.

    ``plugins`` is the ``--plugins`` value. ``None`` when no plugin is known to provide the
    command (argparse then lists the valid ones).
    """
    loaded = {p.name for p in registry.plugins}
    installed = installed_entry_points()
    if selected_names(plugins) is not None:
        # --plugins / $LATENTSPEED_PLUGINS left some installed plugins out: look in those.
        for other in sorted(set(installed) - loaded):
            try:
                cmd = load_registry([other]).commands.get(name)
            except PluginError:
                continue
            if cmd is not None:
                keep = ",".join(sorted((loaded - {CORE_PLUGIN}) | {other}))
                return (
                    f"command {name!r} is provided by plugin {other!r}, which is installed but not"
                    f" selected: add it to --plugins or $LATENTSPEED_PLUGINS (e.g. --plugins {keep})"
                )
    plugin = known_plugins.COMMANDS.get(name)
    if plugin is None:
        return None
    if plugin in installed:
        return (
            f"command {name!r} is provided by plugin {plugin!r}, which is installed but did not load:"
            " run latentspeed plugins to see why"
        )
    return (
        f"command {name!r} is provided by plugin {plugin!r}, which is not installed: "
        + known_plugins.install_hint(plugin)
    )


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack on stderr: a process that hangs says where."""
    if not hasattr(faulthandler, "register") or threading.current_thread() is not threading.main_thread():
        return
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (OSError, ValueError):  # stderr with no file descriptor (main() called in-process, captured)
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        registry = load_registry(_prescan(argv, "--plugins"))
    except PluginError as exc:
        print(f"latentspeed: error: {exc}", file=sys.stderr)
        return 2
    name = _command_word(argv)
    if name is not None and name not in registry.commands:
        hint = missing_command_hint(name, registry, _prescan(argv, "--plugins"))
        if hint is not None:
            print(f"latentspeed: error: {hint}", file=sys.stderr)
            return 2
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    cmd = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help()
        return 0
    args.registry = registry
    setup_logging(args.log_level or "info")
    _stacks_on_sigusr1()
    try:
        return int(cmd.run(args) or 0)
    except (ConfigError, PluginError, CaptureError) as exc:
        # One line per problem (a config may have several), each in the same grep-able form.
        for line in str(exc).splitlines() or [""]:
            print(f"latentspeed {cmd.name}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def marketstream_main() -> int:
    """``marketstream config.yml``: the stand-alone name of ``latentspeed marketstream``."""
    return main(["marketstream", *sys.argv[1:]])


def engine_main() -> int:
    """``trading_engine_server --config trading_config.yml``: the stand-alone name of ``latentspeed engine``."""
    return main(["engine", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
