"""Loading the four registries from their entry-point groups, with configuration.

Each entry point names one object: an agent (``meta`` + ``async gather(context)``), a fault
pattern (``meta`` + ``detect(index)``, a bare callable, or a list of callables: a library),
a remediation action (an ``ActionModule`` with ``meta``) or a sink (``meta`` + ``send``).
Built-ins are the entry points of the ``aisre`` distribution itself; everything else is a
third-party plugin and is off until configuration turns it on (deny by default).

Configuration (the chart's ``plugins`` values set these):

    AISRE_PLUGINS_ENABLED    third-party plugins to run: ``name``, ``group:name`` (group is
                             agents, patterns, actions or sinks) or ``*``; comma-separated
    AISRE_PLUGINS_DISABLED   plugins to leave off, built-ins included, the same way
    AISRE_PLUGINS_SETTINGS   JSON: {name: {url, secretFile, namespaces: [...], ...}}

Nothing here raises for a plugin's sake: a plugin that fails to import, declares bad
metadata or lacks a prerequisite is kept with its state and the reason.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aisre.api.plugins import PluginGroup, PluginMeta, PluginState
from aisre.api.taxonomy import ActionType
from aisre.plugins.meter import NOT_ENABLED, PLUGINS, RateLimit, label

BUILTIN_DISTRIBUTION = "aisre"
MAX_REASON = 300


@dataclass(frozen=True)
class PluginSettings:
    """One plugin's settings: where its API is, its Secret, and where it may run."""

    url: str | None = None
    secret_file: str | None = None
    secret: str | None = field(default=None, repr=False)
    namespaces: tuple[str, ...] = ()  # empty: every namespace; else names or globs
    extra: Mapping[str, Any] = field(default_factory=dict)

    def allows(self, namespace: str) -> bool:
        return not self.namespaces or any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces)


def _names(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class PluginConfig:
    """Which plugins are on, and their settings."""

    enabled: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()
    settings: Mapping[str, PluginSettings] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PluginConfig:
        """The configuration in the environment; a malformed AISRE_PLUGINS_SETTINGS raises
        ValueError (the operator stops at start with the reason, like any bad setting)."""
        env = os.environ if env is None else env
        raw = (env.get("AISRE_PLUGINS_SETTINGS") or "").strip()
        try:
            parsed = json.loads(raw) if raw else {}
            if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
                raise ValueError("expected a JSON object of objects")
        except ValueError as error:
            raise ValueError(f"AISRE_PLUGINS_SETTINGS: {error}") from error
        settings = {}
        for name, values in parsed.items():
            values = dict(values)
            namespaces = values.pop("namespaces", None) or ()
            settings[str(name)] = PluginSettings(
                url=values.pop("url", None) or None, secret_file=values.pop("secretFile", None) or None,
                namespaces=tuple(str(n) for n in namespaces), extra=values)
        return cls(enabled=_names(env.get("AISRE_PLUGINS_ENABLED")), disabled=_names(env.get("AISRE_PLUGINS_DISABLED")),
                   settings=settings)

    @staticmethod
    def _names_match(names: frozenset[str], group: PluginGroup, name: str) -> bool:
        return bool({"*", name, f"{group.short}:{name}", f"{group.short}:*"} & names)

    def is_disabled(self, group: PluginGroup, name: str) -> bool:
        return self._names_match(self.disabled, group, name)

    def is_enabled(self, group: PluginGroup, name: str) -> bool:
        return self._names_match(self.enabled, group, name)


@dataclass
class Plugin:
    """One registered plugin: what it is, where it comes from and whether it runs."""

    group: PluginGroup
    name: str
    meta: PluginMeta
    obj: Any = None
    builtin: bool = False
    distribution: str = "?"
    state: PluginState = PluginState.ENABLED
    reason: str = ""
    settings: PluginSettings = field(default_factory=PluginSettings)
    limit: RateLimit = field(default_factory=lambda: RateLimit(None))

    @property
    def enabled(self) -> bool:
        return self.state == PluginState.ENABLED

    def summary(self) -> dict[str, Any]:
        """What ``/readyz`` and ``aisre plugins`` show."""
        return {"group": self.group.short, "name": self.name, "version": self.meta.version,
                "source": "builtin" if self.builtin else self.distribution, "state": self.state.value,
                **({"reason": self.reason} if self.reason else {})}


def _shape_error(group: PluginGroup, obj: Any) -> str | None:
    """Why the object cannot be a plugin of the group (None: it can)."""
    if group == PluginGroup.AGENTS and not callable(getattr(obj, "gather", None)):
        return "an agent needs an async gather(context)"
    if group == PluginGroup.PATTERNS:
        items = obj if isinstance(obj, (list, tuple)) else [obj]
        if not all(callable(getattr(item, "detect", item)) for item in items):
            return "a pattern is a callable (or has detect(index)), or a list of them"
    if group == PluginGroup.ACTIONS and not all(callable(getattr(obj, a, None)) for a in ("plan", "verify", "revert")):
        return "an action needs plan, verify and revert (an ActionModule)"
    if group == PluginGroup.SINKS and not callable(getattr(obj, "send", None)):
        return "a sink needs send(...)"
    return None


def _unmet(group: PluginGroup, meta: PluginMeta, settings: PluginSettings, config: PluginConfig) -> str | None:
    """The first missing prerequisite, cheapest check first (None: all met). A Prometheus is
    checked per Investigation by the planner (it is passed to the investigation, not global)."""
    if group == PluginGroup.ACTIONS and meta.name not in {a.value for a in ActionType}:
        return f"{meta.name!r} is not an action type of the API (the CRDs allow {', '.join(a.value for a in ActionType)})"
    if meta.needs.url and not settings.url:
        return f"needs an API URL (AISRE_PLUGINS_SETTINGS {meta.name}.url)"
    if meta.needs.secret:
        if not settings.secret_file:
            return f"needs a Secret (AISRE_PLUGINS_SETTINGS {meta.name}.secretFile, a mounted Secret)"
        try:
            Path(settings.secret_file).read_text()
        except OSError as error:
            return f"cannot read its Secret {settings.secret_file}: {error.strerror or error}"
    return None


def _meta_of(entry: EntryPoint, obj: Any, version: str) -> PluginMeta:
    meta = getattr(obj, "meta", None)
    if meta is None:
        return PluginMeta(name=entry.name, version=version)
    meta = meta if isinstance(meta, PluginMeta) else PluginMeta.model_validate(meta)
    if meta.name != entry.name:
        raise ValueError(f"metadata names {meta.name!r}, the entry point {entry.name!r}")
    return meta


def _load_one(group: PluginGroup, entry: EntryPoint, config: PluginConfig) -> Plugin:
    dist = entry.dist.name if entry.dist is not None else "?"
    version = entry.dist.version if entry.dist is not None else "0.0.0"
    builtin = dist == BUILTIN_DISTRIBUTION
    settings = config.settings.get(entry.name, PluginSettings())
    placeholder = PluginMeta.model_construct(name=entry.name, version=version)
    plugin = Plugin(group, entry.name, placeholder, builtin=builtin, distribution=dist, settings=settings)
    if config.is_disabled(group, entry.name):
        plugin.state, plugin.reason = PluginState.DISABLED, "turned off by AISRE_PLUGINS_DISABLED"
        return plugin
    if not builtin and not config.is_enabled(group, entry.name):
        plugin.state, plugin.reason = PluginState.DISABLED, "installed, not turned on (AISRE_PLUGINS_ENABLED)"
        return plugin
    try:
        obj = entry.load()
        plugin.meta = _meta_of(entry, obj, version)
    except ValidationError as error:
        plugin.state = PluginState.FAILED
        plugin.reason = f"bad metadata: {'; '.join(e['msg'] for e in error.errors()[:3])}"[:MAX_REASON]
        return plugin
    except Exception as error:  # a plugin's import error must not stop the operator
        plugin.state, plugin.reason = PluginState.FAILED, f"{type(error).__name__}: {error}"[:MAX_REASON]
        return plugin
    if builtin:  # the built-ins are versioned with aisre itself
        plugin.meta = plugin.meta.model_copy(update={"version": version})
    shape = _shape_error(group, obj)
    if shape:
        plugin.state, plugin.reason = PluginState.FAILED, shape
        return plugin
    plugin.obj = obj
    unmet = _unmet(group, plugin.meta, settings, config)
    if unmet:
        plugin.state, plugin.reason = PluginState.UNMET, unmet[:MAX_REASON]
        return plugin
    if plugin.meta.needs.secret and settings.secret_file:
        plugin.settings = PluginSettings(url=settings.url, secret_file=settings.secret_file, namespaces=settings.namespaces,
                                         extra=settings.extra, secret=Path(settings.secret_file).read_text().strip())
    plugin.limit = RateLimit(plugin.meta.rate_limit_per_minute)
    return plugin


class Registry:
    """The loaded plugins of every group, built-ins first, then third parties by name."""

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self.plugins: dict[PluginGroup, dict[str, Plugin]] = {group: {} for group in PluginGroup}
        for plugin in sorted(plugins, key=lambda p: (not p.builtin, p.name)):
            self.plugins[plugin.group].setdefault(plugin.name, plugin)

    def of(self, group: PluginGroup, *, enabled_only: bool = True) -> list[Plugin]:
        return [p for p in self.plugins[group].values() if p.enabled or not enabled_only]

    def get(self, group: PluginGroup, name: str) -> Plugin | None:
        return self.plugins[group].get(name)

    def all(self) -> list[Plugin]:
        return [p for group in PluginGroup for p in self.plugins[group].values()]

    def problems(self) -> list[Plugin]:
        """Plugins that should run and do not: failed to load, or prerequisites missing."""
        return [p for p in self.all() if p.state in (PluginState.FAILED, PluginState.UNMET)]

    def readiness(self) -> dict[str, Any]:
        """For ``/readyz``: counts by state, and every plugin that is not running with why."""
        counts: dict[str, int] = {}
        for plugin in self.all():
            counts[plugin.state.value] = counts.get(plugin.state.value, 0) + 1
        return {"counts": counts, "notRunning": [p.summary() for p in self.all() if not p.enabled][:50]}

    def publish(self) -> None:
        """Set the ``aisre_plugins`` and ``aisre_plugin_not_enabled`` gauges."""
        for group in PluginGroup:
            for state in PluginState:
                PLUGINS.labels(group.short, state.value).set(sum(1 for p in self.plugins[group].values() if p.state == state))
        NOT_ENABLED.clear()
        for plugin in self.all():
            if not plugin.enabled:
                NOT_ENABLED.labels(plugin.group.short, label(plugin.group.short, plugin.name), plugin.state.value).set(1)


def load(config: PluginConfig | None = None,
         discover: Callable[[str], Iterable[EntryPoint]] | None = None) -> Registry:
    """Every group's plugins under ``config`` (default: the environment's). ``discover``:
    the entry points of a group (default: the installed distributions')."""
    config = PluginConfig.from_env() if config is None else config
    find = discover or (lambda group: entry_points(group=group))
    plugins: list[Plugin] = []
    for group in PluginGroup:
        seen: set[str] = set()
        for entry in find(group.value):
            if entry.name in seen:
                continue  # the first distribution that declares a name wins; the rest are shadowed
            seen.add(entry.name)
            plugins.append(_load_one(group, entry, config))
    found = Registry(plugins)
    found.publish()
    return found


_current: Registry | None = None
_lock = threading.Lock()


def registry() -> Registry:
    """This process's registry, loaded from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = load()
        return _current


def reload(config: PluginConfig | None = None,
           discover: Callable[[str], Iterable[EntryPoint]] | None = None) -> Registry:
    """Load again (at start, after configuration changed, and in tests)."""
    global _current
    fresh = load(config, discover)
    with _lock:
        _current = fresh
    return fresh
