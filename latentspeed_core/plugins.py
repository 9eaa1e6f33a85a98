"""Plugin discovery and the component registry.

The plugin manager is built by :func:`load_registry`, never at import time, so
tests and embedders choose exactly which plugins load.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

import pluggy

from . import hookspecs
from .components import Command, Component

log = logging.getLogger(__name__)

GROUP = "latentspeed"
CORE_PLUGIN = "core"
KINDS = ("feeds", "venues", "features", "strategies", "risk_checks", "sinks", "commands")
#: How an error names one thing of a kind (``strategies`` -> ``strategy``, not ``strategie``).
SINGULAR = {
    "feeds": "feed",
    "venues": "venue",
    "features": "feature",
    "strategies": "strategy",
    "risk_checks": "risk check",
    "sinks": "sink",
    "commands": "command",
}


class PluginError(Exception):
    """A plugin cannot be loaded or registers something invalid (exit code 2)."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "components": self.components,
        }


@dataclass
class Registry:
    """Every component the loaded plugins registered, by kind and name."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    feeds: dict[str, Component] = field(default_factory=dict)
    venues: dict[str, Component] = field(default_factory=dict)
    features: dict[str, Component] = field(default_factory=dict)
    strategies: dict[str, Component] = field(default_factory=dict)
    risk_checks: dict[str, Component] = field(default_factory=dict)
    sinks: dict[str, Component] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    #: Installed plugins that ``--plugins`` (or ``LATENTSPEED_PLUGINS``) left out.
    unselected: list[str] = field(default_factory=list)

    def get(self, kind: str, name: str) -> Component:
        """Look a component up, or fail with the names that do exist (and the plugin to select)."""
        table: dict = getattr(self, kind)
        try:
            return table[name]
        except KeyError:
            known = ", ".join(sorted(table)) or "none"
            singular = SINGULAR.get(kind, kind)
            provider = self._provider(kind, name)
            if provider is not None:
                selected = [p.name for p in self.plugins if p.name != CORE_PLUGIN]
                raise PluginError(
                    f"{singular} {name!r} is in plugin {provider!r}, which --plugins left out: select it "
                    f"(--plugins {','.join([*selected, provider])})"
                ) from None
            raise PluginError(
                f"unknown {singular} {name!r}; installed: {known}"
                " (is its plugin installed and selected with --plugins?)"
            ) from None

    def _provider(self, kind: str, name: str) -> str | None:
        """The installed but unselected plugin that registers ``name`` (loaded only to say so)."""
        if not self.unselected:
            return None
        try:
            whole = load_registry(self.unselected)
        except PluginError:
            return None
        found = getattr(whole, kind).get(name)
        return found.plugin if found is not None else None


def installed_entry_points() -> dict[str, EntryPoint]:
    """Installed plugins by name. Two distributions claiming one name is an error."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(
                f"plugin name {ep.name!r} is claimed by both {_dist(found[ep.name])} and {_dist(ep)}"
            )
        found[ep.name] = ep
    return found


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def selected_names(plugins: str | list[str] | None) -> list[str] | None:
    """``--plugins`` wins over ``LATENTSPEED_PLUGINS``; ``None`` means all installed."""
    if plugins is None:
        plugins = os.environ.get("LATENTSPEED_PLUGINS") or None
    if plugins is None:
        return None
    if isinstance(plugins, str):
        plugins = plugins.split(",")
    return [p.strip() for p in plugins if p.strip()]


def load_registry(plugins: str | list[str] | None = None, extra: list[object] = ()) -> Registry:
    """Load the core's built-ins, the selected installed plugins and ``extra`` objects.

    A selected plugin that is not installed, or fails to import, is an error; an
    unselected one that fails to import is reported and skipped.
    """
    from . import builtin

    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=CORE_PLUGIN)
    from . import __version__

    infos = {CORE_PLUGIN: PluginInfo(CORE_PLUGIN, "latentspeed-core", __version__)}

    available = installed_entry_points()
    wanted = selected_names(plugins)
    if wanted is not None:
        missing = [n for n in wanted if n not in available]
        if missing:
            raise PluginError(
                f"plugin(s) not installed: {', '.join(missing)}; installed: "
                f"{', '.join(sorted(available)) or 'none'}"
            )
    for name in sorted(available) if wanted is None else wanted:
        ep = available[name]
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not kill the CLI
            if wanted is not None:
                raise PluginError(f"plugin {name!r} ({_dist(ep)}) failed to import: {exc}") from exc
            log.warning("skipping plugin %r (%s): import failed: %s", name, _dist(ep), exc)
            continue
        if pm.is_registered(module):
            continue
        pm.register(module, name=name)
        infos[name] = PluginInfo(name, _dist(ep), ep.dist.version if ep.dist else "?")
    for i, obj in enumerate(extra):
        name = getattr(obj, "__name__", f"extra{i}")
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name, "(in-process)", "")
    pm.check_pending()

    reg = Registry(manager=pm, unselected=sorted(set(available) - set(wanted)) if wanted is not None else [])
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        # Each implementation is called with a register callback of its own, so every component
        # is attributed to the plugin that registered it. The order is pluggy's own (it keeps
        # implementations sorted with tryfirst last and calls them in reverse): tryfirst and
        # trylast are honoured. A wrapper has no result to wrap here: it is refused, not ignored.
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: register_{kind} cannot be a hookwrapper/wrapper "
                    "(registration hooks are called once per plugin, with their own register callback)"
                )
            plugin_name = impl.plugin_name
            infos[plugin_name].hooks.append(f"register_{kind}")

            def register(component, _kind=kind, _plugin=plugin_name):
                _add(reg, infos, _kind, _plugin, component)

            impl.function(register=register)
    for name, info in infos.items():
        plugin = pm.get_plugin(name)
        if plugin is not None and hasattr(plugin, "latentspeed_configure"):
            info.hooks.append("latentspeed_configure")
    reg.plugins = list(infos.values())
    pm.hook.latentspeed_configure.call_historic(kwargs={"registry": reg})
    return reg


def _add(reg: Registry, infos: dict[str, PluginInfo], kind: str, plugin: str, component) -> None:
    expected = Command if kind == "commands" else Component
    if not isinstance(component, expected):
        raise PluginError(f"plugin {plugin!r} registered a {type(component).__name__} as a {kind} entry")
    table = getattr(reg, kind)
    if component.name in table:
        other = table[component.name].plugin
        raise PluginError(
            f"{kind} name {component.name!r} registered by both plugin {other!r} and plugin {plugin!r}"
        )
    object.__setattr__(component, "plugin", plugin)
    table[component.name] = component
    infos[plugin].components.setdefault(kind, []).append(component.name)
