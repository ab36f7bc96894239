"""Remediating one Incident: decide every recommended action with the policy chain,
journal it, execute it as the executor identity, verify it, revert it when verification
fails, and journal the result.

Exactly once, nothing unrecorded: an action is *claimed* by writing its journal entry with
``result: Running`` (and the marker the change will carry) into the Incident's status under
the Incident's resourceVersion, so two writers can never both claim it. Only then is the
change sent. After a crash, a Running entry is never executed again: the target is looked
at instead (``applied``: is the marker there, is the pod gone), and the entry is finished
from what is found — verified when the change is there, Failed (Interrupted) when it is not.

Trust: only what the operator itself decided is executed. The Incident's status (which
only the operator may write; an admission policy in the chart enforces it) names the
Investigation the operator created for it, by uid; that Investigation must be controlled
by the Incident, and each of its recommendations must carry the operator's signature over
the Incident, the Investigation and the action (``aisre.api.signing``). A target is always
in the Incident's namespace (Nodes excepted, which only the operator's own policies
govern). Anything else is journaled Denied (``UntrustedAction``, ``OutOfNamespace``) and
never sent. A resolved Incident is never acted on.

Talks to: the API server through two httpx clients (the operator's own for reads and the
journal, the executor's impersonated one for changes); Events on the Incident and the
target. Metrics go through the ``on_result`` callback (the operator owns the counters).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
from pydantic import ValidationError

from aisre import audit
from aisre.api.incident import (ActionResult, Assessment, Decision, Effect, IncidentState, JournalEntry,
                                operator_forecast)
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import API_VERSION
from aisre.api.taxonomy import ActionType
from aisre.api.remediation_policy import RemediationPolicySpec, Verification
from aisre.errors import AisreError
from aisre.redact import redact, redact_text
from aisre.tracing import record_span
from aisre.api.signing import verify_action
from aisre.remediation import inputs, kubeapi, ledger, verification
from aisre.remediation.actions import CATALOG
from aisre.remediation.actions.base import Plan, PreconditionFailed, apply, diff, workloads_of
from aisre.remediation.policy import (
    ApprovalGiven,
    DecisionInput,
    Pending,
    Verdict,
    decide,
    parse_duration,
    pick_policy,
    target_key,
)

# Test-only hooks: seconds to pause after the claim / after the change, so a test can kill
# the operator process at exactly that point. Unset in production.
PAUSE_AFTER_CLAIM = "AISRE_TEST_PAUSE_AFTER_CLAIM"
PAUSE_AFTER_EXECUTE = "AISRE_TEST_PAUSE_AFTER_EXECUTE"

FINAL_RESULTS = {ActionResult.SUCCEEDED.value, ActionResult.FAILED.value, ActionResult.REVERTED.value}
JOURNAL_LIMIT = 32


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_predicted(incident: dict[str, Any], key: bytes | None) -> bool:
    """A Predicted Incident (a forecast: nothing has failed yet), whose actions the policy's
    ``predictedMode`` governs instead of ``mode``: only one the operator forecast itself
    (``operator_forecast``), never one whose spec someone gave a prediction."""
    return operator_forecast(incident, key)


def needs_remediation(body: dict[str, Any]) -> bool:
    """Cheap pre-check on a watch event: detection has named a root cause and linked the
    Investigation whose recommendations are to be decided."""
    status = body.get("status") or {}
    return bool(status.get("investigationRef") and status.get("rootCause"))


# Refusals that time alone can lift: worth deciding again later without any new event.
TIME_BOUND_REASONS = ("RateLimited", "TooManyConcurrent", "Cooldown", "OutsideWindow")


def waits_for_time(body: dict[str, Any]) -> bool:
    """An Incident with an action refused only for now (rate, concurrency, cooldown, window)."""
    entries = (body.get("status") or {}).get("remediations") or []
    return needs_remediation(body) and any(
        e.get("decision") == Decision.DENIED.value and str(e.get("reason", "")).startswith(TIME_BOUND_REASONS)
        for e in entries)


def incident_objects(incident: dict[str, Any]) -> frozenset[str]:
    """What an Incident is about, as target keys: its resource and the affected objects."""
    spec = incident.get("spec") or {}
    home = (incident.get("metadata") or {}).get("namespace")
    refs = [spec.get("resource") or {}, *(spec.get("affected") or [])]
    return frozenset(target_key(r["kind"], r.get("namespace") or home, r["name"]) for r in refs
                     if r.get("kind") and r.get("name"))


def is_settled(entry: JournalEntry) -> bool:
    """An entry that will never be decided again: executed (any final result) or dry-run."""
    return entry.decision in (Decision.EXECUTE.value, Decision.DRY_RUN.value) and entry.result in (
        FINAL_RESULTS | {ActionResult.SKIPPED.value})


class Claimed(NamedTuple):
    """An action journaled as Running by this operator: what carrying it out needs."""

    incident: dict[str, Any]
    entry: JournalEntry
    action: RecommendedAction
    plan: Plan
    policy: RemediationPolicySpec | None


@dataclass
class Remediator:
    client: httpx.AsyncClient  # the operator's identity: reads, the journal, Events
    executor: httpx.AsyncClient  # the executor's identity: the changes
    instance: str = "aisre"
    on_result: Callable[[str, str, str], None] | None = None  # (action, decision, result)
    max_verify_seconds: float | None = None
    operator_namespace: str | None = None  # its policies may govern other namespaces (targets.namespaces)
    signing_key: bytes | None = None  # the operator's key: without one nothing is trusted, nothing runs
    min_healthy_floor: int = 0  # the lowest minHealthyPercent a namespace's own policy may set
    # Known-good ConfigMap contents (``snapshots``), shared with the operator's keeper; restoreConfig reads them.
    snapshots: Any = None
    # With leader election: whether this replica may still act (leading, renewed within the
    # deadline, the Lease unchanged since its own last write). Asked before deciding, before
    # the claim and again before the change is sent.
    may_act: Callable[[], Awaitable[bool]] | None = None
    # Deciding reads every journal (rate, concurrency, cooldown) and the claim writes one:
    # one decision at a time, so two Incidents handled at once cannot both see room for one
    # more action. The change itself and its verification run outside it.
    _deciding: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # One pass per Incident at a time: Kopf's handler and the timed retry never interleave.
    _incidents: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, repr=False)
    # Per Incident uid: the traceparent of its Investigation's root span (status.traceParent).
    _traces: dict[str, str] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ journal

    def _incident_path(self, namespace: str, name: str) -> str:
        return f"/apis/{API_VERSION}/namespaces/{namespace}/incidents/{name}"

    async def _write(self, namespace: str, name: str, entry: JournalEntry, *, claim: bool = False,
                     state: str | None = None) -> bool:
        """Put ``entry`` into the journal. A claim succeeds only if nobody claimed the id since
        it was read (resourceVersion precondition); other writes retry on conflicts."""
        for _ in range(8):
            incident = await kubeapi.get(self.client, self._incident_path(namespace, name))
            status = incident.get("status") or {}
            journal = list(status.get("remediations") or [])
            # Details quote the target (a dry run's diff of a pod template): no secret values in status.
            entry = entry.model_copy(update={"detail": redact_text(entry.detail)[:2048], "reason": redact_text(entry.reason)[:1024]})
            index = next((i for i, e in enumerate(journal) if e.get("id") == entry.id), None)
            if claim and index is not None:
                current = JournalEntry.model_validate(journal[index])
                if current.result == ActionResult.RUNNING.value or is_settled(current):
                    return False  # claimed by someone else meanwhile
            if index is None:
                journal.append(entry.to_kube())
            else:
                journal[index] = entry.to_kube()
            journal = journal[-JOURNAL_LIMIT:]
            patch: dict[str, Any] = {"metadata": {"resourceVersion": incident["metadata"]["resourceVersion"]},
                                     "status": {"remediations": journal}}
            if state and (state == IncidentState.REMEDIATING.value or status.get("state") == IncidentState.REMEDIATING.value):
                patch["status"]["state"] = state
            try:
                await kubeapi.request(self.client, "PATCH", self._incident_path(namespace, name) + "/status",
                                      body=patch, content_type=kubeapi.MERGE_PATCH)
                return True
            except kubeapi.Conflict:
                if claim:
                    continue  # re-read: the id may still be free
        raise kubeapi.Conflict(f"journal of {namespace}/{name}: too many conflicts")

    async def _ledger(self, incident: dict[str, Any], entry: JournalEntry) -> None:
        """The executed action in the ledger of the operator's namespace (``ledger``)."""
        if self.operator_namespace:
            await ledger.record(self.client, self.operator_namespace, incident, entry, inputs.now())

    async def _event(self, incident: dict[str, Any], entry: JournalEntry, type_: str, reason: str, message: str) -> None:
        meta = incident["metadata"]
        involved = {"apiVersion": API_VERSION, "kind": "Incident", "name": meta["name"],
                    "namespace": meta["namespace"], "uid": meta.get("uid")}
        # Each decision and result is a span of the Investigation's trace (the action's, from
        # its start to its end), and its audit record names that trace.
        ran = entry.started_at is not None and entry.finished_at is not None
        traced = record_span("remediation action" if ran else "remediation decision",
                             parent=self._traces.get(meta.get("uid", "")),
                             start=entry.started_at if ran else None, end=entry.finished_at if ran else None,
                             attributes={"aisre.action": entry.id, "aisre.action.type": getattr(entry.type, "value", entry.type),
                                         "aisre.target": _target_text(entry), "aisre.event": reason,
                                         "aisre.decision": getattr(entry.decision, "value", entry.decision),
                                         "aisre.result": getattr(entry.result, "value", entry.result),
                                         "aisre.policy": entry.policy, "aisre.reason": redact_text(message)[:500]},
                             error=message if type_ == "Warning" else None)
        audit.emit(reason, actor=f"aisre-operator/{self.instance}", obj=involved, reason=message, trace_id=traced, detail={
            "action": entry.id, "type": getattr(entry.type, "value", entry.type), "target": entry.target.to_kube(),
            "decision": getattr(entry.decision, "value", entry.decision), "result": getattr(entry.result, "value", entry.result),
            "policy": entry.policy, "approvedBy": entry.approved_by})
        await kubeapi.post_event(self.client, involved, type_, reason, message, self.instance)
        t = entry.target
        target = {"kind": t.kind, "name": t.name, "namespace": t.namespace or meta["namespace"]}
        if t.kind == "Node":
            target["namespace"] = meta["namespace"]  # Events about nodes live with the Incident
        await kubeapi.post_event(self.client, target, type_, reason, f"incident {meta['name']}: {message}", self.instance)

    async def _policy_status(self, policy: str | None, entry: JournalEntry, executed_last_hour: int | None = None) -> None:
        if not policy:
            return
        namespace, _, name = policy.partition("/")
        path = f"/apis/{API_VERSION}/namespaces/{namespace}/remediationpolicies/{name}/status"
        try:
            current = await kubeapi.get(self.client, path)
            total = int((current.get("status") or {}).get("decisionsTotal") or 0) + 1
            body: dict[str, Any] = {"status": {"decisionsTotal": total, "lastAction": {
                "id": entry.id, "type": entry.type, "target": entry.target.to_kube(), "decision": entry.decision,
                "at": rfc3339(entry.decided_at or inputs.now())}}}
            if executed_last_hour is not None:
                body["status"]["executedLastHour"] = executed_last_hour
            await kubeapi.request(self.client, "PATCH", path, body=body, content_type=kubeapi.MERGE_PATCH)
        except AisreError:
            pass  # display only

    def _count(self, entry: JournalEntry) -> None:
        if self.on_result:
            self.on_result(*(getattr(v, "value", v) for v in (entry.type, entry.decision, entry.result)))

    # ------------------------------------------------------------------ the loop

    async def remediate(self, namespace: str, name: str) -> None:
        # One small lock per Incident ever handled (kept: dropping it safely would need to
        # know that no caller is about to take it).
        async with self._incidents.setdefault((namespace, name), asyncio.Lock()):
            await self._remediate(namespace, name)

    async def _remediate(self, namespace: str, name: str) -> None:
        if self.may_act is not None and not await self.may_act():
            return  # not (or no longer surely) the leader: another replica decides
        incident = await kubeapi.get_or_none(self.client, self._incident_path(namespace, name))
        if incident is None or not needs_remediation(incident) or is_resolved(incident):
            return
        for action, refusal in await self._trusted(incident):
            if refusal is None:
                await self._one(namespace, name, action)
            else:
                await self._refuse(incident, action, refusal)

    async def _trusted(self, incident: dict[str, Any]) -> list[tuple[RecommendedAction, str | None]]:
        """The recommendations the executor may consider, each with the reason it is refused
        outright (None: it goes to the policy chain)."""
        meta, status = incident["metadata"], incident.get("status") or {}
        namespace = meta["namespace"]
        ref = status.get("investigationRef") or {}
        if not ref.get("uid"):
            return []  # not linked by the operator: nothing it recommended
        investigation = await kubeapi.get_or_none(
            self.client, f"/apis/{API_VERSION}/namespaces/{namespace}/investigations/{ref['name']}")
        if investigation is None or investigation["metadata"].get("uid") != ref["uid"] or not any(
                o.get("controller") and o.get("uid") == meta.get("uid")
                for o in investigation["metadata"].get("ownerReferences") or []):
            return []  # not the Investigation the operator created for this Incident
        parent = (investigation.get("status") or {}).get("traceParent")
        if parent:  # what this Incident's decisions and actions continue (bounded: recent Incidents only)
            self._traces[meta.get("uid", "")] = parent
            while len(self._traces) > 1000:
                self._traces.pop(next(iter(self._traces)))
        out: list[tuple[RecommendedAction, str | None]] = []
        for raw in ((investigation.get("status") or {}).get("recommendedActions") or [])[:10]:
            try:
                action = RecommendedAction.model_validate(raw)
            except ValidationError:
                continue
            out.append((action, trust_refusal(self.signing_key, incident, investigation, raw, action)))
            if action.target.kind != "Node" and not action.target.namespace:
                out[-1] = (action.model_copy(update={"target": action.target.model_copy(update={"namespace": namespace})}),
                           out[-1][1])
        return out

    async def _refuse(self, incident: dict[str, Any], action: RecommendedAction, reason: str) -> None:
        """Journal a recommendation that is never decided (untrusted, another namespace)."""
        meta = incident["metadata"]
        journal = {e.get("id"): e for e in (incident.get("status") or {}).get("remediations") or []}
        if str((journal.get(action.id) or {}).get("reason", "")).startswith(reason.split(":")[0]):
            return
        entry = JournalEntry(id=action.id, type=action.type, target=action.target, decision=Decision.DENIED,
                             reason=reason[:1024], decided_at=inputs.now(), result=ActionResult.SKIPPED)
        await self._write(meta["namespace"], meta["name"], entry)
        self._count(entry)
        await self._event(incident, entry, "Warning", "RemediationDenied", f"{entry.type} {_target_text(entry)}: {reason}")

    async def _one(self, namespace: str, name: str, action: RecommendedAction) -> None:
        async with self._deciding:
            claimed = await self._decide(namespace, name, action)
        if claimed is not None:
            await self._run(claimed)

    async def _decide(self, namespace: str, name: str, action: RecommendedAction) -> Claimed | None:
        """Decides one action and journals the decision; for an execution, claims it and
        returns what ``_run`` needs."""
        incident = await kubeapi.get(self.client, self._incident_path(namespace, name))
        journal = {e["id"]: e for e in (incident.get("status") or {}).get("remediations") or []}
        existing = JournalEntry.model_validate(journal[action.id]) if action.id in journal else None
        if existing and existing.result == ActionResult.RUNNING.value:
            await self._recover(incident, action, existing)
            return None
        if existing and is_settled(existing):
            return None
        if is_resolved(incident):
            return None
        state, target = await inputs.target_state(self.client, action)
        chosen = pick_policy(await inputs.policies(self.client, namespace, self.operator_namespace), action, namespace,
                             state, self.operator_namespace)
        now = inputs.now()
        history = await inputs.history(self.client, self.operator_namespace, now)
        pending = pending_of(existing, state.revision, now)
        verdict = decide(DecisionInput(action, namespace, chosen[0] if chosen else None, chosen[1] if chosen else None,
                                       state, now, history, approvals_of(incident), incident_objects(incident),
                                       operator_namespace=self.operator_namespace,
                                       min_healthy_floor=self.min_healthy_floor, pending=pending,
                                       installed=frozenset(CATALOG), predicted=is_predicted(incident, self.signing_key)))
        entry = JournalEntry(id=action.id, type=action.type, target=action.target, decision=verdict.decision,
                             reason=verdict.text[:1024], policy=chosen[0] if chosen else None,
                             approved_by=verdict.approved_by, decided_at=now, result=ActionResult.SKIPPED)
        if verdict.decision in (Decision.EXECUTE.value, Decision.DRY_RUN.value) and target is not None:
            plan, context, error = await self._plan(action, target, incident, now)
            if error is not None:
                entry = entry.model_copy(update={"decision": Decision.DENIED, "reason": error[:1024]})
            elif verdict.decision == Decision.DRY_RUN.value:
                await self._dry_run(incident, entry, plan, target)
                return None
            else:
                policy = chosen[1] if chosen else None
                claimed = await self._claim(incident, entry, plan, sum(
                    1 for h in history if h.policy == entry.policy and now - h.started_at < dt.timedelta(hours=1)))
                return None if claimed is None or plan is None else Claimed(incident, claimed, action, plan, policy)
        if verdict.decision == Decision.AWAITING_APPROVAL.value:
            if pending is None:  # a new decision to approve: its own revision and expiry
                policy = chosen[1] if chosen else None
                expiry = parse_duration(policy.approvers.expire_after if policy and policy.approvers else "1h")
                revision = new_revision(state.revision)
                entry = entry.model_copy(update={"revision": revision, "expires_at": now + expiry})
            else:
                entry = entry.model_copy(update={"revision": pending.revision, "expires_at": pending.expires_at,
                                                 "decided_at": existing.decided_at if existing else now})
            entry = entry.model_copy(update={"result": ActionResult.PENDING})
        if existing and existing.decision == entry.decision and existing.reason.split(":")[0] == entry.reason.split(":")[0] \
                and existing.revision == entry.revision:
            return None  # nothing new to say (and no write, so no event storm)
        await self._write(namespace, name, entry)
        self._count(entry)
        await self._policy_status(entry.policy, entry)
        kind = "Warning" if entry.decision == Decision.DENIED.value else "Normal"
        await self._event(incident, entry, kind, f"Remediation{entry.decision}", f"{entry.type} {_target_text(entry)}: {entry.reason}")
        return None

    async def _plan(self, action: RecommendedAction, target: dict[str, Any], incident: dict[str, Any],
                    now: dt.datetime) -> tuple[Plan | None, Any, str | None]:
        module = CATALOG[action.type]
        meta = incident["metadata"]
        marker = (module.marker_from_target(target) if module.marker_from_target
                  else f"{meta['namespace']}/{meta['name']}/{action.id}/{rfc3339(now)}")
        try:
            context = await self._context(module, action, target)
            return module.plan(target, action, marker, context), context, None
        except PreconditionFailed as error:
            return None, None, f"PreconditionFailed: {error}"
        except AisreError as error:
            return None, None, f"{error.reason}: {error}"

    async def _context(self, module: Any, action: RecommendedAction, target: dict[str, Any]) -> Any:
        if module.context is None:
            return None
        if module.snapshots:
            return await module.context(self.client, action, target, self.snapshots)
        return await module.context(self.client, action, target)

    def _marker(self, plan: Plan) -> str | None:
        if plan.method == "DELETE":
            return str(plan.extra.get("uid"))
        for op in plan.body if isinstance(plan.body, list) else []:
            if op.get("path") == "/metadata/annotations":
                return op["value"].get("aisre.dev/remediation")
        return None

    async def _dry_run(self, incident: dict[str, Any], entry: JournalEntry, plan: Plan | None, target: dict[str, Any]) -> None:
        assert plan is not None
        try:
            after = await apply(self.executor, plan, dry_run=True)
            module = CATALOG[ActionType(entry.type)]
            if plan.method != "PATCH":
                lines = [f"delete {plan.summary}"]
            elif module.dry_run_diff is not None:  # what the generic spec diff does not show (a ConfigMap's data)
                lines = [plan.summary, *module.dry_run_diff(target, after)]
            else:
                lines = redacted_diff(target, after)
            detail = "server-side dry run (dryRun=All) accepted:\n" + "\n".join(lines)
            result = ActionResult.SUCCEEDED
        except AisreError as error:
            detail, result = f"{error.reason}: dry run refused: {error}", ActionResult.FAILED
        entry = entry.model_copy(update={"result": result, "detail": detail[:2048], "finished_at": inputs.now()})
        meta = incident["metadata"]
        await self._write(meta["namespace"], meta["name"], entry)
        self._count(entry)
        await self._policy_status(entry.policy, entry)
        await self._event(incident, entry, "Normal", "RemediationDryRun", f"{entry.type} {_target_text(entry)}: {result.value}")

    async def _claim(self, incident: dict[str, Any], entry: JournalEntry, plan: Plan | None,
                     executed: int) -> JournalEntry | None:
        """Journals the action as Running; None when another writer holds it, or when this
        replica no longer leads."""
        assert plan is not None
        if self.may_act is not None and not await self.may_act():
            return None
        meta = incident["metadata"]
        started = inputs.now()
        entry = entry.model_copy(update={"result": ActionResult.RUNNING, "started_at": started, "marker": self._marker(plan),
                                         "undo": json.dumps(plan.undo) if plan.undo is not None else None,
                                         "detail": plan.summary[:2048]})
        if not await self._write(meta["namespace"], meta["name"], entry, claim=True, state=IncidentState.REMEDIATING.value):
            return None  # someone else holds it; their journal entry is the record
        await self._ledger(incident, entry)  # before the change: a deleted Incident cannot hide it
        await self._policy_status(entry.policy, entry, executed + 1)
        await self._event(incident, entry, "Normal", "RemediationStarted",
                          f"{entry.type} {_target_text(entry)} ({entry.reason}): {plan.summary}")
        return entry

    async def _run(self, claimed: Claimed) -> None:
        """The claimed change, its verification and its result."""
        incident, entry, action, plan, policy = claimed
        await _pause(PAUSE_AFTER_CLAIM)
        if self.may_act is not None and not await self.may_act():
            # Lost the Lease since the claim: send nothing. The entry stays Running, and the
            # next leader finishes it from what it finds (Failed, Interrupted: not sent).
            return
        await self._observe_before(incident, action, plan)
        try:
            await apply(self.executor, plan, dry_run=False)
        except AisreError as error:
            reason = error.reason
            detail = f"{reason}: {error}"
            if isinstance(error, kubeapi.ExecutorForbidden):
                detail = (f"ExecutorForbidden: the executor identity may not do this ({error}); "
                          f"the chart does not enable {entry.type}")
            await self._finish(incident, entry, ActionResult.FAILED, detail)
            return
        await _pause(PAUSE_AFTER_EXECUTE)
        await self._verify_and_finish(incident, entry, action, plan, policy)

    def _home(self, incident: dict[str, Any], action: RecommendedAction) -> str:
        """The namespace whose workloads a change affects (a Node's: the Incident's)."""
        return action.target.namespace or incident["metadata"]["namespace"]

    async def _observe_before(self, incident: dict[str, Any], action: RecommendedAction, plan: Plan) -> None:
        """The state verification compares with: each workload the change rolls out, and the
        namespace's workloads not fully available (for side effects). Best effort: without
        it, the state after the change is judged on its own."""
        namespace = self._home(incident, action)
        try:
            plan.extra["before"] = {ref: await verification.observe(self.client, namespace, ref)
                                    for ref in workloads_of(action, plan)}
            plan.extra["unhealthy_before"] = await verification.unhealthy_now(self.client, namespace)
        except AisreError:
            pass

    async def _assess(self, incident: dict[str, Any], entry: JournalEntry, action: RecommendedAction, plan: Plan,
                      ok: bool) -> Assessment:
        """The journal's assessment of an executed action: cleared, how fast, side effects."""
        namespace = self._home(incident, action)
        judgement = plan.extra.get("judgement")
        side: list[str] = []
        if "unhealthy_before" in plan.extra:
            try:
                now_unhealthy = await verification.unhealthy_now(self.client, namespace)
                side = sorted(now_unhealthy - set(plan.extra["unhealthy_before"]) - set(workloads_of(action, plan)))
            except AisreError:
                pass
        return assessment_of(judgement, ok, entry.started_at, plan.extra.get("cleared_at"), side)

    async def _verify_and_finish(self, incident: dict[str, Any], entry: JournalEntry, action: RecommendedAction,
                                 plan: Plan, policy: RemediationPolicySpec | None) -> None:
        verification_ = (policy.verification if policy else None) or Verification()
        floor = parse_duration(verification_.timeout).total_seconds()
        module = CATALOG[action.type]
        try:
            # The window follows the workload's own rollout (the policy's timeout is the floor).
            timeout = await verification.window_for(self.client, self._home(incident, action),
                                                    workloads_of(action, plan), floor)
        except AisreError:
            timeout = floor
        if self.max_verify_seconds is not None:
            timeout = min(timeout, self.max_verify_seconds)
        try:
            settled = await module.settle(self.executor, action, plan, timeout) if module.settle else ""
            ok, how = await module.verify(self.client, action, plan, timeout)
            how = f"{settled}; {how}" if settled else how
        except AisreError as error:
            ok, how = False, f"{error.reason}: {error}"
        assessment = await self._assess(incident, entry, action, plan, ok)
        if ok:
            await self._finish(incident, entry, ActionResult.SUCCEEDED, f"{plan.summary}; verified: {how}", assessment)
            return
        if not verification_.revert_on_failure or not entry.undo:
            why = "revertOnFailure is off" if not verification_.revert_on_failure else "the action cannot be reverted"
            await self._finish(incident, entry, ActionResult.FAILED, f"VerificationFailed: {how}; not reverted ({why})",
                               assessment)
            return
        try:
            t = action.target
            target = await kubeapi.get(self.client, kubeapi.object_path(t.kind, t.namespace, t.name))
            target.setdefault("kind", t.kind)
            context = await self._context(module, action, target)
            undo_plan = module.revert(target, json.loads(entry.undo), f"{entry.marker}/revert", context)
            await apply(self.executor, undo_plan, dry_run=False)
        except AisreError as error:
            await self._finish(incident, entry, ActionResult.FAILED, f"VerificationFailed: {how}; revert failed: {error}",
                               assessment)
            return
        await self._finish(incident, entry, ActionResult.REVERTED, f"VerificationFailed: {how}; reverted: {undo_plan.summary}",
                           assessment)

    async def _finish(self, incident: dict[str, Any], entry: JournalEntry, result: ActionResult, detail: str,
                      assessment: Assessment | None = None) -> None:
        meta = incident["metadata"]
        entry = entry.model_copy(update={"result": result, "detail": detail[:2048], "finished_at": inputs.now(),
                                         "assessment": assessment})
        await self._ledger(incident, entry)
        # Verified: mitigated (detection resolves it once its signals clear); otherwise back
        # to what was identified (a forecast: still predicted).
        state = IncidentState.MITIGATED if result == ActionResult.SUCCEEDED else (
            IncidentState.PREDICTED if is_predicted(incident, self.signing_key) else IncidentState.IDENTIFIED)
        try:
            await self._write(meta["namespace"], meta["name"], entry, state=state.value)
        except kubeapi.NotFound:
            pass  # the Incident was deleted meanwhile: the ledger keeps the record
        self._count(entry)
        type_ = "Normal" if result == ActionResult.SUCCEEDED else "Warning"
        await self._event(incident, entry, type_, f"Remediation{result.value}", f"{entry.type} {_target_text(entry)}: {detail[:400]}")

    async def _recover(self, incident: dict[str, Any], action: RecommendedAction, entry: JournalEntry) -> None:
        """A Running entry found on (re)start: never execute again; finish it from what the
        cluster shows."""
        module = CATALOG[action.type]
        t = action.target
        target = await kubeapi.get_or_none(self.client, kubeapi.object_path(t.kind, t.namespace, t.name))
        entry = entry.model_copy(update={"marker": entry.marker or recorded_marker(incident, entry)})
        if not module.applied(target, entry.marker):
            await self._finish(incident, entry, ActionResult.FAILED,
                               "Interrupted: the operator stopped before the change reached the API server; not retried")
            return
        plan = Plan("PATCH", "", None, extra={"uid": entry.marker, "unschedulable": action.type == "cordonNode"},
                    summary=f"{entry.detail} (resumed after a restart)")
        namespace = incident["metadata"]["namespace"]
        chosen = pick_policy(await inputs.policies(self.client, namespace, self.operator_namespace), action, namespace,
                             (await inputs.target_state(self.client, action))[0], self.operator_namespace)
        await self._verify_and_finish(incident, entry, action, plan, chosen[1] if chosen else None)


def recorded_marker(incident: dict[str, Any], entry: JournalEntry) -> str | None:
    """The marker of a Running entry rebuilt from its other fields, for an API server whose
    CRD is older than the ``marker`` field (it prunes it): a patch's marker is made of the
    Incident, the action id and decidedAt; a deleted pod's uid is in the claim's detail."""
    if entry.type == "deletePod":
        found = re.search(r"\(uid ([0-9a-f-]+)\)", entry.detail)
        return found.group(1) if found else None
    if entry.decided_at is None:
        return None
    meta = incident["metadata"]
    return f"{meta['namespace']}/{meta['name']}/{entry.id}/{rfc3339(entry.decided_at)}"


def assessment_of(judgement: verification.Judgement | None, ok: bool, started: dt.datetime | None,
                  cleared_at: dt.datetime | None, side_effects: list[str]) -> Assessment:
    """The journal's assessment from verification's judgement (pure). Without a judgement
    (a pod deleted, a node cordoned: nothing rolls out) the verification's own answer is
    whether the fault cleared."""
    if judgement is None:
        effect = Effect.CLEARED if ok else Effect.UNCHANGED
        detail = "verified" if ok else "verification failed"
    else:
        effect, detail = Effect(judgement.outcome), judgement.detail
    cleared = effect == Effect.CLEARED
    seconds = None
    if cleared and started is not None:
        seconds = max(0, int(((cleared_at or dt.datetime.now(dt.UTC)) - started).total_seconds()))
    if side_effects:
        detail = f"{detail}; newly unhealthy in the namespace: {', '.join(side_effects[:10])}"
    return Assessment(cleared=cleared, effect=effect, time_to_clear_seconds=seconds,
                      side_effects=side_effects[:10] or None, detail=redact_text(detail)[:1024])


def redacted_diff(before: Any, after: Any) -> list[str]:
    """A dry run's diff without secret values: compared redacted (``aisre.redact``), and a
    secret-named value that changed is named by its path only (pure)."""
    lines = diff(redact(before), redact(after))
    shown = {line.split(":", 1)[0] for line in lines}
    hidden = [path for path in (line.split(":", 1)[0] for line in diff(before, after)) if path not in shown]
    return lines + [f"{path}: [REDACTED:secret-field] changed" for path in hidden]


def is_resolved(incident: dict[str, Any]) -> bool:
    return (incident.get("status") or {}).get("state") == IncidentState.RESOLVED.value


def trust_refusal(key: bytes | None, incident: dict[str, Any], investigation: dict[str, Any], raw: dict[str, Any],
                  action: RecommendedAction) -> str | None:
    """Why a recommendation is not the operator's own for this Incident, or None (pure)."""
    if key is None:
        return "UntrustedAction: the operator has no signing key, so no recommendation can be verified"
    if not verify_action(key, incident["metadata"].get("uid", ""), investigation["metadata"].get("uid", ""), raw):
        return ("UntrustedAction: the signature does not verify (not made by the operator for this Incident and "
                "this Investigation, or changed since)")
    namespace = incident["metadata"]["namespace"]
    if action.target.kind != "Node" and action.target.namespace not in (None, namespace):
        return f"OutOfNamespace: {action.target.kind}/{action.target.name} is in {action.target.namespace}, not {namespace}"
    return None


def approvals_of(incident: dict[str, Any]) -> dict[str, ApprovalGiven]:
    out = {}
    for raw in (incident.get("spec") or {}).get("approvals") or []:
        if raw.get("actionId") and raw.get("approvedBy"):
            out[raw["actionId"]] = ApprovalGiven(raw["approvedBy"], raw.get("revision"), tuple(raw.get("groups") or ()))
    return out


def new_revision(target_revision: str | None) -> str:
    """What an approval of a new decision must name: the target's revision (the part
    ``pending_of`` compares) and a random part, so that it cannot be known before the
    decision is journaled, and differs for every decision, even on an unchanged target."""
    return f"{target_revision or ''}-{secrets.token_hex(8)}"


def pending_of(existing: JournalEntry | None, target_revision: str | None, now: dt.datetime) -> Pending | None:
    """The journaled decision awaiting approval, while the target is at the revision it
    was decided on and the decision has not expired (pure)."""
    if existing is None or existing.decision != Decision.AWAITING_APPROVAL.value or not existing.revision \
            or existing.expires_at is None or existing.expires_at <= now:
        return None
    if existing.revision.rsplit("-", 1)[0] != (target_revision or ""):
        return None  # the target changed since: what was to be approved is not what would run
    return Pending(existing.revision, existing.expires_at)


def _target_text(entry: JournalEntry) -> str:
    return f"{entry.target.kind}/{entry.target.name}"


async def _pause(variable: str) -> None:
    seconds = float(os.environ.get(variable) or 0)
    if seconds > 0:
        await asyncio.sleep(seconds)


__all__ = ["Remediator", "needs_remediation", "Verdict"]
