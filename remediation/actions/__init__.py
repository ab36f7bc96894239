"""The action catalog: one module per action type, each with preconditions (inside
``plan``), dry run and execute (``base.apply``), ``verify``, ``revert`` and ``applied``
(did an interrupted change reach the API server?). Nothing else can be executed: actions
come from an Investigation's typed recommendations, never from manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aisre.api.taxonomy import ActionType
from aisre.remediation.actions import cordon, delete_pod, restore_config, rollback, rollout_restart, scale, set_resources


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


def _module(mod: Any, **overrides: Any) -> ActionModule:
    fields = {"kinds": mod.KINDS, "plan": getattr(mod, "plan", None), "revert": mod.revert, "applied": mod.applied,
              "verify": mod.verify, "context": getattr(mod, "context", None),
              "marker_from_target": getattr(mod, "marker_for", None), "settle": getattr(mod, "settle", None),
              "snapshots": getattr(mod, "SNAPSHOTS", False), "dry_run_diff": getattr(mod, "dry_run_diff", None)}
    fields.update(overrides)
    return ActionModule(**fields)


CATALOG: dict[ActionType, ActionModule] = {
    ActionType.DELETE_POD: _module(delete_pod),
    ActionType.ROLLOUT_RESTART: _module(rollout_restart),
    ActionType.SCALE: _module(scale),
    ActionType.ROLLBACK: _module(rollback),
    ActionType.SET_RESOURCES: _module(set_resources),
    ActionType.CORDON_NODE: _module(cordon, plan=cordon.plan_for(True)),
    ActionType.UNCORDON_NODE: _module(cordon, plan=cordon.plan_for(False)),
    ActionType.RESTORE_CONFIG: _module(restore_config),
}
