"""The action catalog: one module per action type, each with preconditions (inside
``plan``), dry run and execute (``base.apply``), ``verify``, ``revert`` and ``applied``
(did an interrupted change reach the API server?). Nothing else can be executed: actions
come from an Investigation's typed recommendations, never from manifests.

The catalog is the ``aisre.actions`` registry (``aisre.plugins``): each built-in below is an
entry point in pyproject, with metadata that names the RBAC it needs. A third-party action
is an ``ActionModule`` with ``meta`` too; it must be one of the API's action types (the
CRDs allow no other), and it runs only as every action does: recommended for an Incident,
through the whole policy chain, by the executor as the executor's identity."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aisre.api.plugins import PluginGroup, PluginMeta, RbacRule
from aisre.api.taxonomy import ActionType
from aisre.plugins import registry
from aisre.remediation.actions import (cordon, delete_pod, drain_node, restore_config, rollback, rollout_restart, scale,
                                      set_resources)


@dataclass(frozen=True)
class ActionModule:
    kinds: set[str]
    plan: Any
    revert: Any
    applied: Any
    verify: Any
    context: Any = None  # async (client, action, target) -> dict, for plans that need more than the target
    marker_from_target: Any = None  # the marker is the target's own (deletePod: its uid)
    settle: Any = None  # async (executor, action, plan, timeout) -> str: what the change needs after it, before verify
    snapshots: bool = False  # context() also gets the executor's ConfigMap snapshot store (restoreConfig)
    dry_run_diff: Any = None  # (target, after) -> lines: what a dry run records, when the generic diff does not show it
    meta: PluginMeta | None = None  # name (the action type), version, the RBAC the executor needs


def _module(mod: Any, **overrides: Any) -> ActionModule:
    fields = {"kinds": mod.KINDS, "plan": getattr(mod, "plan", None), "revert": mod.revert, "applied": mod.applied,
              "verify": mod.verify, "context": getattr(mod, "context", None),
              "marker_from_target": getattr(mod, "marker_for", None), "settle": getattr(mod, "settle", None),
              "snapshots": getattr(mod, "SNAPSHOTS", False), "dry_run_diff": getattr(mod, "dry_run_diff", None)}
    fields.update(overrides)
    return ActionModule(**fields)


def _meta(action: ActionType, *rules: tuple[str, str, tuple[str, ...]]) -> PluginMeta:
    return PluginMeta(name=action.value, version="builtin",
                      rbac=tuple(RbacRule(api_group=g, resource=r, verbs=v) for g, r, v in rules))


WORKLOADS_PATCH = (("apps", "deployments", ("get", "patch")), ("apps", "statefulsets", ("get", "patch")),
                   ("apps", "daemonsets", ("get", "patch")))
DELETE_POD = _module(delete_pod, meta=_meta(ActionType.DELETE_POD, ("", "pods", ("get", "delete"))))
ROLLOUT_RESTART = _module(rollout_restart, meta=_meta(ActionType.ROLLOUT_RESTART, *WORKLOADS_PATCH))
SCALE = _module(scale, meta=_meta(ActionType.SCALE, *WORKLOADS_PATCH[:2]))
ROLLBACK = _module(rollback, meta=_meta(ActionType.ROLLBACK, *WORKLOADS_PATCH, ("apps", "replicasets", ("list",)),
                                        ("apps", "controllerrevisions", ("list",)), ("", "pods", ("delete",))))
SET_RESOURCES = _module(set_resources, meta=_meta(ActionType.SET_RESOURCES, *WORKLOADS_PATCH))
CORDON_NODE = _module(cordon, plan=cordon.plan_for(True), meta=_meta(ActionType.CORDON_NODE, ("", "nodes", ("get", "patch"))))
UNCORDON_NODE = _module(cordon, plan=cordon.plan_for(False),
                        meta=_meta(ActionType.UNCORDON_NODE, ("", "nodes", ("get", "patch"))))
RESTORE_CONFIG = _module(restore_config, meta=_meta(ActionType.RESTORE_CONFIG, ("", "configmaps", ("get", "patch")),
                                                    *WORKLOADS_PATCH))
DRAIN_NODE = _module(drain_node, meta=_meta(ActionType.DRAIN_NODE, ("", "nodes", ("get", "patch")), ("", "pods", ("list",)),
                                            ("", "pods/eviction", ("create",))))


class Catalog(Mapping[str, ActionModule]):
    """The enabled actions by type, read from the registry on each look-up (so that a
    registry reloaded with new configuration applies at once). ``ActionType`` keys work:
    it is a str enum."""

    def _actions(self) -> dict[str, ActionModule]:
        return {p.name: p.obj for p in registry().of(PluginGroup.ACTIONS)}

    def __getitem__(self, key: str) -> ActionModule:
        return self._actions()[str(getattr(key, "value", key))]

    def __iter__(self) -> Iterator[str]:
        return iter(self._actions())

    def __len__(self) -> int:
        return len(self._actions())

    def items(self) -> Any:  # ActionType keys, as callers had them
        return [(ActionType(name), module) for name, module in self._actions().items()]


CATALOG = Catalog()
