"""The decision: an ordered chain of pure functions over inputs gathered beforehand.

    scope → action allowed → mode → bounds → window → rate limit → cooldown
          → blast radius → GitOps ownership → approval

Each step looks at a ``DecisionInput`` and either passes (returns None) or stops the
chain with a ``Verdict`` (decision + CamelCase reason + detail). Nothing here reads the
cluster or the clock: ``aisre.remediation.inputs`` gathers the facts, the executor acts
on the verdict. Deny by default: no matching policy means observe only, and a step that
cannot tell (a missing replica count, an unknown parameter) refuses rather than guesses.

Modes are graduated: ``observe`` and ``suggest`` stop the chain right after the mode step
(nothing is checked further because nothing will change); ``dryRun`` continues through
the parameter bounds (the server-side dry run needs valid parameters) and stops there;
``approve`` and ``auto`` go through every step.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aisre.api.incident import Decision
from aisre.api.investigation import RecommendedAction
from aisre.api.meta import LabelSelector, duration_seconds
from aisre.api.remediation_policy import (
    Limits,
    RemediationPolicySpec,
    ResourceBounds,
    ScaleBounds,
    TimeWindowRule,
)
from aisre.api.taxonomy import ActionType, RemediationMode
from aisre.remediation import sizing

# Reasons recorded in the journal (CamelCase; the first word of JournalEntry.reason).
NO_POLICY = "NoMatchingPolicy"
OUT_OF_SCOPE = "OutOfScope"
ACTION_NOT_ALLOWED = "ActionNotAllowed"
ACTION_NOT_INSTALLED = "ActionNotInstalled"
POLICY_PAUSED = "PolicyPaused"
MODE_OBSERVE = "ModeObserve"
MODE_SUGGEST = "ModeSuggest"
MODE_DRY_RUN = "ModeDryRun"
OUT_OF_BOUNDS = "OutOfBounds"
OUTSIDE_WINDOW = "OutsideWindow"
RATE_LIMITED = "RateLimited"
TOO_MANY_CONCURRENT = "TooManyConcurrent"
COOLDOWN = "Cooldown"
BLAST_RADIUS = "BlastRadius"
GITOPS_MANAGED = "GitOpsManaged"
AWAITING_APPROVAL = "AwaitingApproval"
APPROVED = "Approved"
NOT_AN_APPROVER = "NotAnApprover"
STALE_APPROVAL = "StaleApproval"
AUTO = "ModeAuto"
NOT_THIS_INCIDENT = "NotThisIncident"

MODE_ORDER = [RemediationMode.OBSERVE, RemediationMode.SUGGEST, RemediationMode.DRY_RUN,
              RemediationMode.APPROVE, RemediationMode.AUTO]

# Ownership marks of GitOps controllers: a direct patch would be reverted by them.
GITOPS_ANNOTATIONS = ("argocd.argoproj.io/tracking-id", "kustomize.toolkit.fluxcd.io/checksum",
                      "helm.toolkit.fluxcd.io/driftDetection")
# app.kubernetes.io/instance alone is set by Helm too, so it does not count.
GITOPS_OWNED_LABELS = ("argocd.argoproj.io/instance", "kustomize.toolkit.fluxcd.io/name",
                       "helm.toolkit.fluxcd.io/name")

ROLLOUT_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
CLUSTER_SCOPED_KINDS = {"Node"}
NODE_ACTIONS = {ActionType.CORDON_NODE.value, ActionType.UNCORDON_NODE.value, ActionType.DRAIN_NODE.value}


@dataclass(frozen=True)
class PastAction:
    """An action executed earlier (from any Incident's journal), for limits and cooldowns."""

    policy: str | None
    target: str  # Kind/namespace/name
    started_at: dt.datetime
    running: bool = False


@dataclass(frozen=True)
class TargetState:
    """What the chain needs to know about the target, gathered from the cluster."""

    exists: bool = True
    revision: str | None = None  # changes with the target's spec: a workload's or node's generation, a pod's uid
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    replicas: int | None = None  # desired replicas (nodes in the cluster for a Node)
    ready: int | None = None  # healthy replicas now (schedulable Ready nodes for a Node)
    ready_kept: int = 0  # Ready pods a rollback keeps: they run the revision it returns to
    memory_limit_bytes: int | None = None  # of the container setResources would change
    heap_bytes: int | None = None  # the fixed heap that container's flags set
    cpu_limit_millis: int | None = None
    owners: tuple[str, ...] = ()  # target keys of its controller chain (a pod's ReplicaSet, Deployment)
    rollout_unavailable: int | None = None  # replicas its own update takes out at once (its strategy), if a workload


@dataclass(frozen=True)
class ApprovalGiven:
    """An approval as recorded in the Incident's spec (the API server checked that
    ``approved_by`` is its author and ``groups`` are the author's own groups)."""

    approved_by: str
    revision: str | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pending:
    """The journaled decision an approval must name: its revision and when it expires."""

    revision: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class DecisionInput:
    action: RecommendedAction
    namespace: str  # the Incident's namespace
    policy_name: str | None  # namespace/name
    policy: RemediationPolicySpec | None
    target: TargetState
    now: dt.datetime
    history: Sequence[PastAction] = ()
    approvals: Mapping[str, ApprovalGiven] = field(default_factory=dict)  # by actionId
    # The objects the Incident is about (its resource and the affected ones, as target_key);
    # None: not known (every target is the Incident's).
    incident_objects: frozenset[str] | None = None
    # Policies in this namespace are the cluster operator's own: they alone govern Nodes and
    # other namespaces, and may lower minHealthyPercent below the floor.
    operator_namespace: str | None = None
    min_healthy_floor: int = 0
    pending: Pending | None = None  # the approval this action awaits, when journaled and current
    # The action types the catalog holds (the aisre.actions registry); None: not known (all).
    installed: frozenset[str] | None = None
    # The Incident is Predicted (a forecast, nothing failed yet): each rule's predictedMode
    # governs, observe when it has none (docs/forecasts.md).
    predicted: bool = False

    @property
    def central(self) -> bool:
        """The policy is in the operator's namespace."""
        return bool(self.operator_namespace) and (self.policy_name or "").partition("/")[0] == self.operator_namespace


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    detail: str = ""
    approved_by: str | None = None

    @property
    def text(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


Step = Callable[[DecisionInput], Verdict | None]


def target_key(kind: str, namespace: str | None, name: str) -> str:
    """``Kind/namespace/name``; cluster-scoped kinds have no namespace, whatever was passed."""
    return f"{kind}/{'' if kind in CLUSTER_SCOPED_KINDS else namespace or ''}/{name}"


def mode_of(policy: RemediationPolicySpec, action: ActionType | str, predicted: bool = False) -> RemediationMode | None:
    """The mode for a listed action: its rule's, else the policy's; None when the action is
    not listed (denied). For a Predicted Incident, the rule's predictedMode, else observe:
    pre-emptive actions are off unless the policy allows them separately."""
    for rule in policy.actions or []:
        if ActionType(rule.type) == ActionType(action):
            if predicted:
                return RemediationMode(rule.predicted_mode or RemediationMode.OBSERVE)
            return RemediationMode(rule.mode or policy.mode)
    return None


def parse_duration(text: str) -> dt.timedelta:
    """A policy's duration; the models bound them (``aisre.api.meta.bounded_duration``)."""
    return dt.timedelta(seconds=duration_seconds(text))


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions or []:
        op, values = str(expr.operator), set(expr.values or [])
        if op == "In" and labels.get(expr.key) not in values:
            return False
        if op == "NotIn" and expr.key in labels and labels[expr.key] in values:
            return False
        if op == "Exists" and expr.key not in labels:
            return False
        if op == "DoesNotExist" and expr.key in labels:
            return False
    return True


# ---------------------------------------------------------------- the steps, in order


def check_scope(i: DecisionInput) -> Verdict | None:
    if i.policy is None:
        return Verdict(Decision.OBSERVED, NO_POLICY, "no RemediationPolicy governs this target: observe only")
    targets = i.policy.targets
    kind = i.action.target.kind
    kinds = [str(k) for k in (targets.kinds or [])] if targets else []
    if (kind in CLUSTER_SCOPED_KINDS or i.action.type in NODE_ACTIONS) and not i.central:
        # A namespace's policy governs that namespace: never the nodes every namespace shares.
        return Verdict(Decision.DENIED, OUT_OF_SCOPE,
                       f"{kind} targets are governed only by policies in the operator's namespace")
    if kind in CLUSTER_SCOPED_KINDS and kind not in kinds:
        # Not even the operator's own policies govern shared nodes implicitly.
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, f"{kind} targets must be listed in targets.kinds")
    if kinds and kind not in kinds:
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, f"kind {kind} is not in targets.kinds")
    namespace = i.action.target.namespace or i.namespace
    home = (i.policy_name or "").partition("/")[0]
    if kind not in CLUSTER_SCOPED_KINDS and not i.central and home and namespace != home:
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, f"a policy of namespace {home} does not govern namespace {namespace}")
    if kind not in CLUSTER_SCOPED_KINDS and targets and targets.namespaces and namespace not in targets.namespaces:
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, f"namespace {namespace} is not in targets.namespaces")
    if targets and not selector_matches(targets.selector, i.target.labels):
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, "the target's labels do not match targets.selector")
    if not i.target.exists:
        return Verdict(Decision.DENIED, OUT_OF_SCOPE, "the target does not exist")
    return None


def check_action_allowed(i: DecisionInput) -> Verdict | None:
    assert i.policy is not None
    if mode_of(i.policy, i.action.type) is None:
        return Verdict(Decision.DENIED, ACTION_NOT_ALLOWED, f"{i.action.type} is not listed in the policy's actions")
    return None


def check_action_installed(i: DecisionInput) -> Verdict | None:
    """An action the catalog does not hold (turned off, failed to load) is never run."""
    if i.installed is not None and str(getattr(i.action.type, "value", i.action.type)) not in i.installed:
        return Verdict(Decision.DENIED, ACTION_NOT_INSTALLED,
                       f"{i.action.type} is not in the action catalog here (aisre plugins says why)")
    return None


def check_mode(i: DecisionInput) -> Verdict | None:
    assert i.policy is not None
    mode = mode_of(i.policy, i.action.type, i.predicted)
    if i.policy.paused:
        return Verdict(Decision.DENIED, POLICY_PAUSED, "the policy is paused")
    if mode == RemediationMode.OBSERVE:
        return Verdict(Decision.OBSERVED, MODE_OBSERVE, "the policy observes this action only")
    if mode == RemediationMode.SUGGEST:
        return Verdict(Decision.SUGGESTED, MODE_SUGGEST, "the policy suggests this action; a person runs it")
    return None


def _param(action: RecommendedAction, name: str) -> Any:
    return (action.parameters or {}).get(name)


def check_bounds(i: DecisionInput) -> Verdict | None:
    assert i.policy is not None
    bounds = i.policy.bounds
    kind = i.action.type
    if kind == ActionType.SCALE:
        scale = (bounds.scale if bounds else None) or ScaleBounds()
        replicas = _param(i.action, "replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            return Verdict(Decision.DENIED, OUT_OF_BOUNDS, "scale needs an integer replicas parameter")
        if not scale.min_replicas <= replicas <= scale.max_replicas:
            return Verdict(Decision.DENIED, OUT_OF_BOUNDS,
                           f"replicas {replicas} outside [{scale.min_replicas}, {scale.max_replicas}]")
    if kind == ActionType.SET_RESOURCES:
        verdict = _resource_bounds(i, (bounds.resources if bounds else None) or ResourceBounds())
        if verdict is not None:
            return verdict
    if mode_of(i.policy, i.action.type, i.predicted) == RemediationMode.DRY_RUN:
        return Verdict(Decision.DRY_RUN, MODE_DRY_RUN, "the policy runs this action as a server-side dry run")
    return None


def _resource_bounds(i: DecisionInput, res: ResourceBounds) -> Verdict | None:
    """setResources within the policy's bounds: the derived new memory limit
    (``sizing.new_memory_limit``, from the peak, the factor, the limit before a cut and the
    heap the flags set) and the CPU percent."""
    memory = _param(i.action, "memoryIncreasePercent")
    peak = _param(i.action, "memoryPeakBytes")
    previous = _param(i.action, "memoryPreviousLimitBytes")
    cpu = _param(i.action, "cpuIncreasePercent")
    if memory is None and cpu is None and peak is None:
        return Verdict(Decision.DENIED, OUT_OF_BOUNDS,
                       "setResources needs memoryIncreasePercent, memoryPeakBytes or cpuIncreasePercent")
    killed = _param(i.action, "memoryKilledAtBytes")
    for name, value in (("memory increase", memory), ("cpu increase", cpu), ("memory peak", peak),
                        ("previous memory limit", previous), ("memory limit killed at", killed)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            return Verdict(Decision.DENIED, OUT_OF_BOUNDS, f"{name} must be a positive integer")
    for name, value, ceiling in (("memory", memory, res.max_memory_increase_percent),
                                 ("cpu", cpu, res.max_cpu_increase_percent)):
        if value is not None and value > ceiling:  # the factor asked for, whatever rounding makes of it
            return Verdict(Decision.DENIED, OUT_OF_BOUNDS, f"{name} increase {value}% exceeds {ceiling}%")
    if memory is None and peak is None:
        return None
    current = i.target.memory_limit_bytes
    if current is None and (res.max_memory or peak is not None):
        return Verdict(Decision.DENIED, OUT_OF_BOUNDS, "the container has no memory limit to raise")
    if current is None:  # raised from its request, by the percentage alone (checked above)
        return None
    new = sizing.new_memory_limit(current, peak, memory, previous, i.target.heap_bytes)
    percent = sizing.increase_percent(current, new)
    if percent > res.max_memory_increase_percent:
        return Verdict(Decision.DENIED, OUT_OF_BOUNDS, f"memory increase {percent}% (to {sizing.quantity(new)}) exceeds "
                                                       f"{res.max_memory_increase_percent}%")
    if res.max_memory and new > parse_quantity(res.max_memory):
        return Verdict(Decision.DENIED, OUT_OF_BOUNDS, f"new memory limit {sizing.quantity(new)} exceeds {res.max_memory}")
    return None


def in_window(window: TimeWindowRule, now: dt.datetime) -> bool:
    local = now.astimezone(ZoneInfo(window.timezone))
    start = dt.time.fromisoformat(window.start)
    end = dt.time.fromisoformat(window.end)
    t = local.time().replace(tzinfo=None)
    day = local.strftime("%a")
    days = [str(d) for d in window.days] if window.days else None
    if start < end:
        return (days is None or day in days) and start <= t < end
    # overnight: the part after midnight belongs to the previous day's window
    if t >= start:
        return days is None or day in days
    if t < end:
        yesterday = (local - dt.timedelta(days=1)).strftime("%a")
        return days is None or yesterday in days
    return False


def check_window(i: DecisionInput) -> Verdict | None:
    assert i.policy is not None
    windows = i.policy.windows or []
    if windows and not any(in_window(w, i.now) for w in windows):
        return Verdict(Decision.DENIED, OUTSIDE_WINDOW, "now is outside every allowed time window")
    return None


def _limits(i: DecisionInput) -> Limits:
    assert i.policy is not None
    return i.policy.limits or Limits()


def check_rate_limit(i: DecisionInput) -> Verdict | None:
    limits = _limits(i)
    mine = [a for a in i.history if a.policy == i.policy_name]
    last_hour = [a for a in mine if i.now - dt.timedelta(hours=1) < a.started_at <= i.now]
    if len(last_hour) >= limits.actions_per_hour:
        return Verdict(Decision.DENIED, RATE_LIMITED, f"{len(last_hour)} actions in the last hour (limit {limits.actions_per_hour})")
    running = [a for a in mine if a.running]
    if len(running) >= limits.max_concurrent:
        return Verdict(Decision.DENIED, TOO_MANY_CONCURRENT, f"{len(running)} actions running (limit {limits.max_concurrent})")
    return None


def check_cooldown(i: DecisionInput) -> Verdict | None:
    cooldown = parse_duration(_limits(i).cooldown)
    key = target_key(i.action.target.kind, i.action.target.namespace, i.action.target.name)
    recent = [a for a in i.history if a.target == key and i.now - cooldown < a.started_at <= i.now]
    if recent:
        return Verdict(Decision.DENIED, COOLDOWN, f"an action ran on this target within the cooldown of {_limits(i).cooldown}")
    return None


# The actions carried out by the workload's own rolling update of its pod template.
# restoreConfig: its users' restarts, which are theirs.
ROLLING_ACTIONS = {ActionType.ROLLBACK, ActionType.ROLLOUT_RESTART, ActionType.SET_RESOURCES, ActionType.RESTORE_CONFIG}


def healthy_after(i: DecisionInput) -> tuple[int, int] | None:
    """(healthy replicas after the action at worst, desired replicas), or None if unknown."""
    t = i.target
    if t.replicas is None or t.ready is None:
        return None
    kind = i.action.type
    if kind == ActionType.SCALE:
        wanted = _param(i.action, "replicas")
        if not isinstance(wanted, int):
            return None
        return (min(t.ready, wanted), t.replicas) if wanted < t.replicas else (t.ready, t.replicas)
    if kind == ActionType.UNCORDON_NODE:
        return (t.ready, t.replicas)
    if kind == ActionType.ROLLBACK and t.ready_kept:
        # A stuck rollout's rollback scales the old pods back up: those already on the
        # revision it returns to stay; only the others can be taken out, the strategy's share at once.
        at_risk = max(0, t.ready - t.ready_kept)
        return (t.ready_kept + max(0, at_risk - (t.rollout_unavailable or 1)), t.replicas)
    if kind in ROLLING_ACTIONS and t.rollout_unavailable is not None:
        # The workload's own update replaces its pods: what it takes out at once is what its
        # strategy allows (a surge-only rolling update of one replica takes none; a Recreate, all).
        return (max(0, t.ready - t.rollout_unavailable), t.replicas)
    # deletePod, a rolling restart/rollback/resource change, a cordon or a drain (one node
    # less; the drained pods themselves are bounded by their PodDisruptionBudgets): one at a time.
    return (max(0, t.ready - 1), t.replicas)


def min_healthy(i: DecisionInput) -> int:
    """The blast-radius bound in force: a namespace's own policy cannot go below the floor
    the operator is configured with; only a policy in the operator's namespace can."""
    own = _limits(i).min_healthy_percent
    return own if i.central else max(own, i.min_healthy_floor)


def check_blast_radius(i: DecisionInput) -> Verdict | None:
    minimum = min_healthy(i)
    if minimum == 0:
        return None
    after = healthy_after(i)
    if after is None:
        return Verdict(Decision.DENIED, BLAST_RADIUS, "the target's replica counts are unknown")
    healthy, desired = after
    # An action that takes no healthy replica away (all of them already down, a scale up)
    # cannot widen an outage: the bound is about what the action itself may cost.
    if desired > 0 and healthy * 100 < minimum * desired and healthy < (i.target.ready or 0):
        return Verdict(Decision.DENIED, BLAST_RADIUS,
                       f"{healthy} of {desired} would stay healthy, below {minimum}%")
    return None


def gitops_owner(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    for key in GITOPS_OWNED_LABELS:
        if key in labels:
            return key
    for key in GITOPS_ANNOTATIONS:
        if key in annotations:
            return key
    return None


def check_gitops(i: DecisionInput) -> Verdict | None:
    assert i.policy is not None
    owner = gitops_owner(i.target.labels, i.target.annotations)
    if owner and not i.policy.allow_git_ops_managed:
        if i.action.type == ActionType.RESTORE_CONFIG:
            # Its content lives in Git: the fix is the revert of the commit that changed it there.
            t = i.action.target
            return Verdict(Decision.SUGGESTED, GITOPS_MANAGED,
                           f"managed by GitOps ({owner}); revert the commit that changed {t.kind}/{t.name} in Git and "
                           "let the GitOps controller sync it (a direct restore would be reverted), then restart its users")
        return Verdict(Decision.SUGGESTED, GITOPS_MANAGED,
                       f"managed by GitOps ({owner}); a direct change would be reverted, so suggest only")
    return None


def check_approval(i: DecisionInput) -> Verdict | None:
    """An approval counts only for the decision journaled as awaiting it: same action id
    (which includes the Incident and the parameters), same revision (the target unchanged
    since), before it expires, by a user the policy names or a member of a group it names
    (the groups recorded with the approval, which the API server checked are the author's)."""
    assert i.policy is not None
    if mode_of(i.policy, i.action.type, i.predicted) != RemediationMode.APPROVE:
        return Verdict(Decision.EXECUTE, AUTO, "the policy runs this action automatically")
    pending = i.pending
    if pending is None or i.now >= pending.expires_at:
        return Verdict(Decision.AWAITING_APPROVAL, AWAITING_APPROVAL,
                       f"approve with: aisre approve incident/NAME {i.action.id}")
    given = i.approvals.get(i.action.id)
    if given is None:
        return Verdict(Decision.AWAITING_APPROVAL, AWAITING_APPROVAL,
                       f"approve with: aisre approve incident/NAME {i.action.id}")
    if given.revision != pending.revision:
        return Verdict(Decision.AWAITING_APPROVAL, STALE_APPROVAL,
                       f"the approval by {given.approved_by} names revision {given.revision or '(none)'}; "
                       f"the action awaits approval of revision {pending.revision}")
    approvers = i.policy.approvers
    users = set(approvers.users or []) if approvers else set()
    groups = set(approvers.groups or []) if approvers else set()
    if given.approved_by not in users and not groups & set(given.groups):
        return Verdict(Decision.AWAITING_APPROVAL, NOT_AN_APPROVER,
                       f"{given.approved_by} is not among the policy's approvers")
    return Verdict(Decision.EXECUTE, APPROVED, f"approved by {given.approved_by}", approved_by=given.approved_by)


def check_incident_owns_target(i: DecisionInput) -> Verdict | None:
    """An Incident changes only what it is about. Two Incidents in one namespace may be
    investigated to the same most evident cause; the second must not repair the first's
    object again (a second rollback would restore the bad revision). Suggested instead."""
    if i.incident_objects is None:
        return None
    t = i.action.target
    key = target_key(t.kind, t.namespace or i.namespace, t.name)
    if key in i.incident_objects or any(owner in i.incident_objects for owner in i.target.owners):
        return None
    return Verdict(Decision.SUGGESTED, NOT_THIS_INCIDENT,
                   f"{t.kind}/{t.name} is not what this Incident is about; only suggested here")


CHAIN: tuple[Step, ...] = (
    check_scope, check_action_allowed, check_action_installed, check_mode, check_incident_owns_target, check_bounds, check_window, check_rate_limit,
    check_cooldown, check_blast_radius, check_gitops, check_approval,
)


def decide(i: DecisionInput) -> Verdict:
    """Run the chain; the first step that stops it decides."""
    for step in CHAIN:
        verdict = step(i)
        if verdict is not None:
            return verdict
    raise AssertionError("check_approval always decides")  # pragma: no cover


def pick_policy(
    policies: Sequence[tuple[str, RemediationPolicySpec]], action: RecommendedAction, namespace: str,
    target: TargetState, operator_namespace: str | None = None,
) -> tuple[str, RemediationPolicySpec] | None:
    """The governing policy among those in scope: the most restrictive mode wins (deny by
    default), ties broken by name, so the choice never depends on list order."""
    in_scope = []
    for name, spec in policies:
        probe = DecisionInput(action, namespace, name, spec, target, dt.datetime.now(dt.UTC),
                              operator_namespace=operator_namespace)
        if check_scope(probe) is None:
            mode = mode_of(spec, action.type)
            rank = -1 if mode is None or spec.paused else MODE_ORDER.index(mode)
            in_scope.append((rank, name, spec))
    if not in_scope:
        return None
    _, name, spec = min(in_scope, key=lambda item: (item[0], item[1]))
    return name, spec


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_quantity(text: str) -> int:
    """A Kubernetes quantity in base units (bytes, or cores for CPU without ``m``)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])
