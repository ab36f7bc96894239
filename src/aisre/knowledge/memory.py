"""The memory of past incidents: every concluded Incident becomes a case, and a new
Investigation is shown the most similar past cases ("seen 3 times in 30 days; last fixed by
rollback, verified").

Pure and deterministic. A case is the root cause (category, the resource's kind, the
workload's identity across renames: its name without generated suffixes and its app label)
and an evidence signature (the reasons, evidence kinds, log signatures and templates,
changed fields and the causal chain's shape behind the root cause). Similarity is explained:
it says which parts matched. The index is bounded; the oldest cases go first.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aisre.knowledge.runbooks import evidence_behind

MAX_CASES = 10_000
MAX_TOKENS = 64  # signature tokens kept per case
MIN_SIMILARITY = 0.6  # a past case below this is not "seen before"
RECURRENCE_DAYS = 30
APP_LABELS = ("app.kubernetes.io/name", "app", "k8s-app", "app.kubernetes.io/instance")
# Suffixes controllers and generators add: a pod's ReplicaSet hash and its own, a
# StatefulSet ordinal, kustomize's content hash of a ConfigMap or Secret.
_GENERATED = re.compile(r"(-[a-f0-9]{8,10}(-[a-z0-9]{5})?|-[0-9]+|-[bcdfghjklmnpqrstvwxz2456789]{10})$")
_NUMBERS = re.compile(r"\b(0x)?[0-9a-f]*[0-9][0-9a-f]*\b")


def stable_name(name: str) -> str:
    """A workload's name without what a controller or generator appended."""
    return _GENERATED.sub("", name) or name


def _template(text: str) -> str:
    return _NUMBERS.sub("<n>", text.lower()).strip()[:80]


def signature_of(status: dict[str, Any]) -> frozenset[str]:
    """The evidence signature of an Investigation's conclusion (bounded, sorted when stored)."""
    tokens: set[str] = set()
    for item in evidence_behind(status):
        data = item.get("data") or {}
        tokens.add(f"evidence:{item.get('kind', '')}")
        if data.get("reason"):
            tokens.add(f"reason:{str(data['reason']).lower()}")
        if data.get("signature"):
            tokens.add(f"log:{data['signature']}")
        for entry in (data.get("templates") or [])[:3]:
            if isinstance(entry, dict) and entry.get("template"):
                tokens.add(f"template:{_template(str(entry['template']))}")
        for changed in data.get("fields") or []:
            tokens.add(f"changed:{changed}")
    hypotheses = status.get("hypotheses") or []
    chain = (hypotheses[0].get("chain") if hypotheses else None) or []
    if chain:
        tokens.add("chain:" + ">".join(str(link.get("ref", "")).partition("/")[0] for link in chain))
    return frozenset(sorted(tokens)[:MAX_TOKENS])


def identity_of(name: str | None, labels: dict[str, str] | None) -> tuple[str, ...]:
    """Who the root cause's resource is across renames and revisions."""
    found = [f"name:{stable_name(name)}"] if name else []
    found += [f"app:{labels[key]}" for key in APP_LABELS if (labels or {}).get(key)][:1]
    return tuple(found)


@dataclass(frozen=True)
class Case:
    """One concluded Incident, as memory keeps it."""

    uid: str
    namespace: str
    name: str  # the Incident's
    concluded_at: dt.datetime
    category: str
    kind: str = ""
    resource: str = ""  # Kind/name of the root cause, as it was then
    identity: tuple[str, ...] = ()
    signature: frozenset[str] = frozenset()
    actions: tuple[tuple[str, str], ...] = ()  # (type, result) from the remediation journal
    # (type, cleared) from the journal's assessments: did the action clear the fault
    cleared: tuple[tuple[str, bool], ...] = ()
    verdict: str | None = None  # a person's feedback: correct or wrong

    def record(self) -> dict[str, Any]:
        """What the Incident's status keeps (status.case), from which the index is rebuilt."""
        return {"category": self.category, "kind": self.kind, "resource": self.resource, "identity": list(self.identity),
                "signature": sorted(self.signature), "concludedAt": self.concluded_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def case_of_incident(incident: dict[str, Any]) -> Case | None:
    """The case an Incident holds in status.case (None before it concluded, or for NoFault)."""
    meta, status = incident.get("metadata") or {}, incident.get("status") or {}
    record = dict(status.get("case") or {})
    feedback = (incident.get("spec") or {}).get("feedback") or {}
    if feedback.get("verdict") == "wrong" and feedback.get("category"):
        # a person corrected it: remember what it really was
        corrected = feedback.get("resource") or {}
        record["category"] = feedback["category"]
        if corrected.get("kind") and corrected.get("name"):
            record.update(kind=corrected["kind"], resource=f"{corrected['kind']}/{corrected['name']}")
    if not record.get("category") or record["category"] == "NoFault" or not meta.get("uid"):
        return None
    try:
        concluded = dt.datetime.fromisoformat(str(record.get("concludedAt")).replace("Z", "+00:00"))
    except ValueError:
        return None
    actions = tuple((str(j.get("type", "")), str(j.get("result", ""))) for j in status.get("remediations") or []
                    if j.get("decision") == "Execute")
    cleared = tuple((str(j.get("type", "")), bool((j.get("assessment") or {}).get("cleared")))
                    for j in status.get("remediations") or [] if j.get("decision") == "Execute" and j.get("assessment"))
    verdict = feedback.get("verdict")
    return Case(uid=meta["uid"], namespace=meta.get("namespace", ""), name=meta.get("name", ""), concluded_at=concluded,
                category=record["category"], kind=record.get("kind", ""), resource=record.get("resource", ""),
                identity=tuple(record.get("identity") or ()), signature=frozenset(record.get("signature") or ()),
                actions=actions, cleared=cleared, verdict=verdict)


@dataclass(frozen=True)
class Match:
    case: Case
    similarity: float
    matched_on: tuple[str, ...]


def explanation(category: str, kind: str | None, shared_identity: Iterable[str], shared: Iterable[str],
                union: int) -> tuple[str, ...]:
    """Which parts of two cases matched, in words: the embedded index and the Cypher over the
    graph (operator/graph_store.py) explain a match the same way."""
    why = [f"category {category}"]
    if kind:
        why.append(f"kind {kind}")
    if identity := sorted(shared_identity):
        why.append("same workload (" + ", ".join(identity) + ")")
    if evidence := sorted(shared):
        why.append(f"evidence {len(evidence)} of {union}: " + ", ".join(evidence[:6]))
    return tuple(why)


def similarity(new: Case, old: Case) -> Match | None:
    """How alike two cases are, and which parts matched; None when the root cause differs
    (another category is another problem, however alike the symptoms)."""
    if new.category != old.category:
        return None
    same_kind = bool(new.kind) and new.kind == old.kind
    shared_identity = set(new.identity) & set(old.identity)
    union = new.signature | old.signature
    shared = new.signature & old.signature
    score = 0.35 + (0.15 if same_kind else 0.0) + (0.2 if shared_identity else 0.0)
    if union:
        score += 0.3 * len(shared) / len(union)
    why = explanation(new.category, new.kind if same_kind else None, shared_identity, shared, len(union))
    # Three decimals, rounded half up the same way as the Cypher (aisre.knowledge.graph.SIMILAR).
    return Match(old, math.floor(score * 1000 + 0.5) / 1000, why)


class Memory:
    """The bounded index of past cases, by category (similar cases share it)."""

    def __init__(self, max_cases: int = MAX_CASES) -> None:
        self.max_cases = max_cases
        self._cases: OrderedDict[str, Case] = OrderedDict()  # by uid, oldest conclusion first
        self._by_category: dict[str, dict[str, Case]] = {}
        self._verdicts: dict[str, str] = {}  # Incident uid -> a person's verdict on its root cause

    def note_verdict(self, uid: str, verdict: str | None) -> None:
        if verdict:
            self._verdicts[uid] = verdict
        else:
            self._verdicts.pop(uid, None)

    def confirmed_share(self) -> float | None:
        """Of the root causes people gave a verdict on, the share they confirmed (None: no verdicts)."""
        if not self._verdicts:
            return None
        return sum(1 for v in self._verdicts.values() if v == "correct") / len(self._verdicts)

    def __len__(self) -> int:
        return len(self._cases)

    def get(self, uid: str) -> Case | None:
        return self._cases.get(uid)

    def add(self, case: Case) -> None:
        self.remove(case.uid)
        newest = next(reversed(self._cases.values()), None)
        self._cases[case.uid] = case
        if newest is not None and case.concluded_at < newest.concluded_at:
            # rebuilt from a listing in no particular order: keep the oldest first for eviction
            ordered = sorted(self._cases.values(), key=lambda c: c.concluded_at)
            self._cases = OrderedDict((c.uid, c) for c in ordered)
        self._by_category.setdefault(case.category, {})[case.uid] = case
        while len(self._cases) > self.max_cases:
            oldest = next(iter(self._cases))
            self.remove(oldest)

    def remove(self, uid: str) -> None:
        case = self._cases.pop(uid, None)
        if case is not None:
            self._by_category.get(case.category, {}).pop(uid, None)

    def similar(self, case: Case, limit: int = 3, namespace: str | None = None) -> list[Match]:
        """The most similar past cases (not ``case`` itself), best first, newest first on ties;
        only those of ``namespace`` when given (one team never sees another's incidents)."""
        found = []
        for old in self._by_category.get(case.category, {}).values():
            if old.uid == case.uid or old.concluded_at > case.concluded_at or (namespace and old.namespace != namespace):
                continue
            match = similarity(case, old)
            if match is not None and match.similarity >= MIN_SIMILARITY:
                found.append(match)
        found.sort(key=lambda m: (-m.similarity, -m.case.concluded_at.timestamp(), m.case.uid))
        return found[:limit]

    def recurrences(self, case: Case, days: int = RECURRENCE_DAYS, namespace: str | None = None) -> list[Case]:
        """Earlier cases of the same root cause on the same workload within ``days``."""
        since = case.concluded_at - dt.timedelta(days=days)
        return sorted((old for old in self._by_category.get(case.category, {}).values()
                       if old.uid != case.uid and since <= old.concluded_at <= case.concluded_at
                       and (not namespace or old.namespace == namespace) and set(old.identity) & set(case.identity)),
                      key=lambda c: c.concluded_at)


FINAL = ("Succeeded", "Failed", "Reverted")


def action_record(case: Case) -> list[tuple[str, bool]]:
    """What each executed action did for this case: (type, cleared the fault). From the
    journal's assessments; for a case recorded without them (older, or read back from the
    graph), a verified action counts as having cleared it."""
    if case.cleared:
        return list(case.cleared)
    return [(t, r == "Succeeded") for t, r in case.actions if r in FINAL]


def outcome_text(case: Case) -> str:
    """What was done about a past case: the last action executed and how it ended."""
    if not case.actions:
        return "no action was executed"
    action, result = case.actions[-1]
    verdict = {"Succeeded": "verified", "Reverted": "reverted (it did not help)", "Failed": "failed"}.get(result, result.lower())
    return f"fixed by {action}, {verdict}" if result == "Succeeded" else f"{action}: {verdict}"


def seen_before(case: Case, recurrences: list[Case], days: int = RECURRENCE_DAYS) -> str | None:
    """One line for people: how often this recurred and what was done last time."""
    if not recurrences:
        return None
    last = recurrences[-1]
    times = "once" if len(recurrences) == 1 else f"{len(recurrences)} times"
    return f"seen {times} in {days} days; last {last.concluded_at:%Y-%m-%d %H:%M} UTC ({last.name}): {outcome_text(last)}"


def status_entries(matches: list[Match]) -> list[dict[str, Any]]:
    """``status.similarIncidents`` of an Investigation."""
    return [{"name": m.case.name, "namespace": m.case.namespace, "concludedAt": m.case.concluded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "category": m.case.category, "resource": m.case.resource, "similarity": m.similarity,
             "matchedOn": list(m.matched_on), "outcome": outcome_text(m.case),
             **({"verdict": m.case.verdict} if m.case.verdict else {})} for m in matches]


def case_of_investigation(status: dict[str, Any], *, uid: str, namespace: str, name: str, now: dt.datetime,
                          labels: dict[str, str] | None = None) -> Case | None:
    """The case a concluded Investigation makes (``uid``/``name``: its Incident's). None
    without a root cause, and for NoFault: nothing happened, so nothing recurs."""
    root = status.get("rootCause") or {}
    if not root.get("category") or root["category"] == "NoFault":
        return None
    resource = root.get("resource") or {}
    return Case(uid=uid, namespace=namespace, name=name, concluded_at=now, category=root["category"],
                kind=resource.get("kind", ""), resource=f"{resource.get('kind', '')}/{resource.get('name', '')}".strip("/"),
                identity=identity_of(resource.get("name"), labels), signature=signature_of(status))
