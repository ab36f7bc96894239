"""Runbooks for a concluded Investigation: read the Runbooks of its namespace and of the
operator's (those apply cluster-wide), list the ones that match in status, and add the
actions they propose to the recommendations (the policy still decides on each). When no
catalog action fits the root cause, the remediation note points at the best match.

Never fails an Investigation: a Runbook that cannot be read is a Runbook not listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import structlog

from aisre.api.meta import GROUP, VERSION
from aisre.kube.reader import ClusterReader, KubeAccessError
from aisre.kube.resources import RESOURCES
from aisre.knowledge.runbooks import conclusion_of, matching, needs_labels
from aisre.operator.namespace_sight import watched
from aisre.operator.recommend import runbook_actions
from aisre.remediation.actions import CATALOG

log = structlog.get_logger(__name__)
PLURAL_OF_KIND = {r.kind: r.plural for r in RESOURCES.values() if r.plural != "secrets"}  # secret objects are never read


async def _runbooks_in(client: httpx.AsyncClient, namespace: str) -> list[dict[str, Any]]:
    try:
        response = await client.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/runbooks")
        response.raise_for_status()
        return list(response.json().get("items") or [])
    except (httpx.HTTPError, ValueError) as error:  # no CRD yet, no RBAC: no runbooks
        log.info("runbooks not read", namespace=namespace, error=repr(error))
        return []


async def _none() -> list[dict[str, Any]]:
    return []


class RunbookShelf:
    """The Runbooks Kopf's watch keeps (its index: namespace → bodies), for the namespaces the
    operator watches; any other namespace (say the operator's own, when it serves a list of
    namespaces) is read from the API server as before."""

    def __init__(self, index: Mapping[str, Iterable[dict[str, Any]]], patterns: tuple[str, ...]) -> None:
        self.index = index
        self.patterns = patterns  # the operator's namespace settings, as Kopf takes them

    def watches(self, namespace: str) -> bool:
        if any("!" in p for p in self.patterns):
            return False  # exclusions: not worth second-guessing Kopf, read the API
        return watched(namespace, self.patterns)

    def runbooks(self, namespace: str) -> list[dict[str, Any]] | None:
        """The namespace's Runbooks, or None when the watch does not cover it."""
        if not self.watches(namespace):
            return None
        return list(self.index.get(namespace, ()))


async def _runbooks(client: httpx.AsyncClient, namespace: str, shelf: RunbookShelf | None) -> list[dict[str, Any]]:
    kept = shelf.runbooks(namespace) if shelf is not None else None
    return kept if kept is not None else await _runbooks_in(client, namespace)


async def root_labels(reader: ClusterReader, resource: dict[str, Any], namespace: str) -> dict[str, str]:
    """The labels of the root cause's resource (none for a Secret: its object is never read)."""
    plural = PLURAL_OF_KIND.get(resource.get("kind", ""))
    if plural is None or not resource.get("name"):
        return {}
    try:
        obj = await reader.get(plural, resource["name"], None if resource.get("kind") == "Node" else namespace)
    except KubeAccessError:
        return {}
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


async def attach_runbooks(client: httpx.AsyncClient, reader: ClusterReader, status: dict[str, Any], namespace: str,
                          operator_namespace: str | None, shelf: RunbookShelf | None = None) -> None:
    """Adds ``runbooks`` (and the actions they propose) to an Investigation's status."""
    root = status.get("rootCause")
    if not root:
        return
    try:
        await _attach(client, reader, status, namespace, operator_namespace, root, shelf)
    finally:
        point_note_at_runbook(status)


def point_note_at_runbook(status: dict[str, Any]) -> None:
    """The remediation note (no catalog action fits) names the best-matching Runbook, or
    says that none matches (pure)."""
    note = status.get("remediationNote")
    if not note:
        return
    runbooks = status.get("runbooks") or []
    if runbooks:
        note["runbook"] = f"{runbooks[0]['namespace']}/{runbooks[0]['name']}"
        suffix = f" Follow the runbook {note['runbook']} ({runbooks[0].get('title', '')})."
    else:
        suffix = " No Runbook matches this root cause; write one (docs/knowledge.md) to record the fix."
    if suffix not in note["message"]:
        note["message"] = note["message"][:1024 - len(suffix)] + suffix


async def _attach(client: httpx.AsyncClient, reader: ClusterReader, status: dict[str, Any], namespace: str,
                  operator_namespace: str | None, root: dict[str, Any], shelf: RunbookShelf | None) -> None:
    # Both lists (from the watch's index when it covers them) and the root cause's labels at
    # once (the reader memoises the labels, which the memory of past incidents reads next):
    # an Investigation waits for one round trip at most.
    here, cluster_wide, labels = await asyncio.gather(
        _runbooks(client, namespace, shelf),
        _runbooks(client, operator_namespace, shelf) if operator_namespace and operator_namespace != namespace
        else _none(),
        root_labels(reader, root.get("resource") or {}, namespace))
    runbooks = here + cluster_wide
    if not runbooks:
        return
    labels = labels if needs_labels(runbooks) else {}
    conclusion = conclusion_of(status, labels)
    matched = matching(runbooks, conclusion, namespace) if conclusion is not None else []
    if not matched:
        return
    status["runbooks"] = matched
    existing = status.get("recommendedActions") or []
    kinds_of = {action.value: module.kinds for action, module in CATALOG.items()}
    status["recommendedActions"] = existing + runbook_actions(matched, root, namespace, existing, kinds_of)[
        :max(0, 10 - len(existing))]
