"""Kopf handlers for remediation: the keeper of known-good ConfigMap contents
(``config_snapshots``) starts with the remediator; every change of an Incident (its status, when detection
names the root cause; its spec, when an approval is added) runs the remediator for it.

A watch-event handler rather than a field-change handler: Kopf's diff base ignores
``status``, and the remediator is idempotent (it decides from the journal, not from the
event), so seeing an event twice costs one read. Kopf serialises events per object, so
one Incident is never remediated by two handlers of this process at once; across
processes the journal claim (resourceVersion precondition) keeps actions exactly once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf

from aisre.api.meta import GROUP, VERSION
from aisre.kube.reader import connect
from aisre.operator.config_snapshots import keep_snapshots
from aisre.operator.metrics import REMEDIATIONS
from aisre.remediation.executor import Remediator, needs_remediation, waits_for_time
from aisre.remediation.snapshots import SnapshotStore


def _count(action: str, decision: str, result: str) -> None:
    REMEDIATIONS.labels(action, decision, result).inc()


@kopf.on.startup()
async def open_remediator(memo: kopf.Memo, **_: Any) -> None:
    config = memo.config
    client = connect(config.kubeconfig)
    executor = connect(config.kubeconfig)
    if config.executor_user:
        executor.headers["Impersonate-User"] = config.executor_user
    memo.snapshots = SnapshotStore(client, config.operator_namespace, memo.signing_key)
    interval = float(os.environ.get("AISRE_SNAPSHOT_INTERVAL") or 60)
    if interval > 0:
        memo.snapshot_keeper = asyncio.create_task(keep_snapshots(
            memo.snapshots, client, config.namespaces, config.exclude_namespaces, interval,
            float(os.environ.get("AISRE_SNAPSHOT_SETTLE") or 30)), name="config-snapshots")
    memo.remediator = Remediator(client, executor, instance=config.instance, on_result=_count, snapshots=memo.snapshots,
                                 max_verify_seconds=config.max_verify_seconds,
                                 operator_namespace=config.operator_namespace, signing_key=memo.signing_key,
                                 min_healthy_floor=config.min_healthy_floor,
                                 may_act=memo.elector.fence if memo.get("elector") is not None else None)


@kopf.on.cleanup()
async def close_remediator(memo: kopf.Memo, **_: Any) -> None:
    for task in (memo.get("retries") or {}).values():
        task.cancel()
    if memo.get("snapshot_keeper") is not None:
        memo.snapshot_keeper.cancel()
    remediator = getattr(memo, "remediator", None)
    if remediator is not None:
        await remediator.client.aclose()
        await remediator.executor.aclose()


@kopf.on.event(GROUP, VERSION, "incidents")
async def on_incident(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") == "DELETED" or not needs_remediation(dict(body)):
        return
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    await memo.remediator.remediate(namespace, name)
    if waits_for_time(dict(body)):
        _retry_later(memo, namespace, name)


RETRY_SECONDS = 60.0


def _retry_later(memo: kopf.Memo, namespace: str, name: str) -> None:
    """Refusals that only time lifts (rate limit, concurrency, cooldown, window) produce no
    event when they lapse: decide the Incident again in a minute. In memory on purpose — a
    Kopf timer would put a finalizer on every Incident; after a restart the initial listing
    decides every Incident again anyway."""
    tasks: dict[tuple[str, str], asyncio.Task[None]] = memo.setdefault("retries", {})
    if (namespace, name) in tasks and not tasks[(namespace, name)].done():
        return

    async def later() -> None:
        await asyncio.sleep(RETRY_SECONDS)
        await memo.remediator.remediate(namespace, name)

    tasks[(namespace, name)] = asyncio.create_task(later())

