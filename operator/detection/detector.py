"""The detector: active signals in, decisions about Incidents out.

``observe`` replaces what one object currently shows; ``alert`` adds or clears an
Alertmanager alert. ``decide`` (pure over the detector's state and ``now``) groups the
signals that are due by root, folds related roots together, opens an incident once a
root has been in trouble for the settle time (storm control caps how many open per
namespace per minute, the rest fold into one aggregate), updates occurrences, and
resolves an incident whose signals have been clear for the resolve window. The caller
applies the returned operations (store.py) — nothing here does I/O — and says which
writes succeeded (``written``), so ``settled`` can tell a Kafka consumer which alerts are on
record and may have their offsets committed.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aisre.api.incident import IncidentSource
from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource
from aisre.api.taxonomy import Severity
from aisre.operator.detection.correlate import NODE_EXPLAINS, Root, fingerprint, members_of, related, root_of
from aisre.operator.detection.index import ClusterIndex
from aisre.operator.detection.thresholds import Thresholds
from aisre.operator.metrics import SIGNALS

MUTE_SECONDS = 30.0
SEEN_KEYS = 400  # signal keys remembered per incident (persisted, so a restart does not recount)
MAX_MEMBERS = 50
MAX_HELD_ALERTS = 2000  # firing alerts held at once, over every namespace
SWEPT = (SignalSource.LOGS, SignalSource.METRICS)  # conclusions of the log and metric sweeps
# Sources from outside whose reasons are free text (never a metric label), and the Incident
# source an Incident they raise records.
OUTSIDE = {SignalSource.ALERTMANAGER: IncidentSource.ALERTMANAGER, SignalSource.PAGERDUTY: IncidentSource.PAGERDUTY,
           SignalSource.OPSGENIE: IncidentSource.OPSGENIE, SignalSource.EXTERNAL: IncidentSource.EXTERNAL}
FREE_TEXT = set(OUTSIDE)  # reasons never a metric label
MAX_PAGES = 16
SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass
class ReasonCount:
    source: str
    reason: str
    count: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    message: str = ""


@dataclass
class Tracked:
    """One root in trouble: a candidate until it opens, then an Incident until it resolves."""

    root: Root
    namespace: str  # where the Incident lives
    fingerprint: str
    candidate_since: dt.datetime
    first_seen: dt.datetime
    last_seen: dt.datetime
    source: IncidentSource = IncidentSource.DETECTION
    origin: str | None = None  # the system outside that raised it (an external signal's producer)
    name: str | None = None  # the Incident's name, once created
    members: dict[str, ResourceRef] = field(default_factory=dict)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    occurrences: int = 0
    reasons: dict[str, ReasonCount] = field(default_factory=dict)
    severity: Severity = Severity.MEDIUM
    clear_since: dt.datetime | None = None
    aggregate: bool = False
    dirty: bool = True
    written_at: dt.datetime | None = None
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)  # by signal key: spec.pages entries
    traceparent: str | None = None  # of the first webhook request that brought a signal (W3C)
    # Keys absorbed since the Incident was last written: not on record yet (a Kafka consumer
    # commits an external signal's offset only once it is; ``Detector.settled``).
    unwritten: set[str] = field(default_factory=set)

    @property
    def opened(self) -> bool:
        return self.name is not None

    def title(self) -> str:
        if self.aggregate:
            return f"Incident storm in {self.root.namespace}: {len(self.members)} more roots folded into this one"
        reasons = ", ".join(sorted(self.reasons, key=lambda r: -self.reasons[r].count)[:3])
        return f"{self.root.display}: {reasons}"[:256]

    def absorb(self, signals: list[Signal], now: dt.datetime) -> None:
        for signal in signals:
            if signal.key in self.seen:
                continue
            self.seen[signal.key] = None
            self.unwritten.add(signal.key)
            while len(self.seen) > SEEN_KEYS:
                self.seen.popitem(last=False)
            self.occurrences += 1
            self.dirty = True
            # Alert names are free text from outside: never a label value (bounded cardinality).
            SIGNALS.labels(signal.source.value, "Alert" if signal.source in FREE_TEXT else signal.reason).inc()
            count = self.reasons.get(signal.reason)
            if count is None:
                self.reasons[signal.reason] = ReasonCount(signal.source.value, signal.reason, 1, signal.time, signal.time,
                                                          signal.message)
            else:
                count.count += 1
                count.last_seen = max(count.last_seen, signal.time)
                count.message = signal.message or count.message
            if signal.source in OUTSIDE and not self.opened:
                self.source = OUTSIDE[signal.source]
                self.origin = signal.origin or self.origin
            page = signal.detail.get("page")
            if page and signal.key not in self.pages and len(self.pages) < MAX_PAGES:
                self.pages[signal.key] = {**page, "closed": False}
            if signal.traceparent and self.traceparent is None and not self.opened:
                self.traceparent = signal.traceparent
        self.last_seen = max(self.last_seen, now)

    def promote_members(self, top_of: Callable[[ResourceRef], ResourceRef]) -> None:
        """Members recorded before their controller was known (a quota's event on a
        ReplicaSet seen before the ReplicaSet's owner) become that controller."""
        for key, ref in list(self.members.items()):
            top = top_of(ref)
            if top != ref:
                del self.members[key]
                self.dirty = True
                self.add_members([top])

    def add_members(self, refs: list[ResourceRef]) -> None:
        for ref in refs:
            key = f"{ref.namespace or ''}/{ref.display()}"
            if key not in self.members and len(self.members) < MAX_MEMBERS and ref.display() != self.root.display:
                self.members[key] = ref
                self.dirty = True


@dataclass(frozen=True)
class Open:
    tracked: Tracked


@dataclass(frozen=True)
class Update:
    tracked: Tracked


@dataclass(frozen=True)
class Resolve:
    tracked: Tracked


Operation = Open | Update | Resolve


def _max_severity(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_ORDER.index(Severity(a)) >= SEVERITY_ORDER.index(Severity(b)) else b


class Detector:
    def __init__(self, thresholds: Thresholds, operator_namespace: str, index: ClusterIndex | None = None,
                 write_interval: float = 2.0) -> None:
        self.th = thresholds
        self.operator_namespace = operator_namespace
        self.index = index or ClusterIndex()
        self.write_interval = write_interval
        self.active: dict[str, list[Signal]] = {}  # by observed object's uid
        self.alerts: dict[str, Signal] = {}  # firing alerts, by key
        # Keys of held alerts that a written Incident carries, or that detection gave up
        # writing (their namespace refuses it): nothing more is owed to them (``settled``).
        self.stored_alerts: set[str] = set()
        self.tracked: dict[str, Tracked] = {}  # by fingerprint
        self.opened_at: dict[str, deque[dt.datetime]] = {}  # per namespace, for storm control
        self.signals_seen = 0
        self.node_seen: dict[str, dt.datetime] = {}  # nodes with trouble, last seen when
        self.muted: dict[str, dt.datetime] = {}  # namespaces where Incidents cannot be written, until when
        # Told of each signal an object newly shows and of each alert (the fleet's signals
        # topic); must not block.
        self.on_signal: Callable[[Signal], None] | None = None

    # --- input ---------------------------------------------------------------------------

    def observe(self, uid: str, signals: list[Signal]) -> None:
        """What one object shows now (empty: it is fine)."""
        self.signals_seen += len(signals)
        if self.on_signal is not None:
            self._announce(self.active.get(uid, []), signals)
        if signals:
            self.active[uid] = signals
        else:
            self.active.pop(uid, None)

    def _announce(self, before: list[Signal], now: list[Signal]) -> None:
        assert self.on_signal is not None
        known = {signal.key for signal in before}
        for signal in now:
            if signal.key not in known:
                self.on_signal(signal)

    def reports_trouble_in(self, namespace: str, besides: str) -> bool:
        """Whether anything but the signals observed as ``besides`` says the namespace is in
        trouble: an Incident (or a candidate) of its own, or a signal waiting out its grace."""
        if any(t.root.namespace == namespace and any(r.source != SignalSource.LOGS.value for r in t.reasons.values())
               for t in self.tracked.values()):
            return True
        return any(s.object.namespace == namespace and not self._by_design(s)
                   for uid, signals in self.active.items() if uid != besides for s in signals)

    def forget(self, uid: str) -> None:
        self.active.pop(uid, None)

    def alert(self, signal: Signal) -> bool:
        """Hold a firing alert (or clear a resolved one); False when the held alerts are at
        their cap and this one is new (refused: memory stays bounded whatever is posted)."""
        self.signals_seen += 1
        if self.on_signal is not None:
            self.on_signal(signal)
        if not signal.firing:
            self.alerts.pop(signal.key, None)
            self.stored_alerts.discard(signal.key)
            for tracked in self.tracked.values():  # the pager resolved it: never resolve it again
                page = tracked.pages.get(signal.key)
                if page is not None and not page["closed"]:
                    page["closed"] = True
                    tracked.dirty = True
            return True
        if signal.key not in self.alerts:
            if len(self.alerts) >= MAX_HELD_ALERTS:
                return False
            if self._carried(signal.key):  # delivered again after a restart: on record already
                self.stored_alerts.add(signal.key)
        self.alerts[signal.key] = signal
        return True

    def _carried(self, key: str) -> bool:
        """Whether a written Incident counted this signal key (one adopted at start-up counts)."""
        return any(t.opened and key in t.seen and key not in t.unwritten for t in self.tracked.values())

    def drop(self, tracked: Tracked, now: dt.datetime, namespace_gone: bool = True) -> None:
        """Stop tracking; where its namespace is going away (or refuses us), leave the
        namespace alone a while. An Incident someone deleted mutes nothing: a fault that
        lasts opens a new one."""
        self.tracked.pop(tracked.fingerprint, None)
        if namespace_gone:
            self.muted[tracked.namespace] = now + dt.timedelta(seconds=MUTE_SECONDS)
            # No Incident will carry them: owed nothing more (a consumer must not wait forever).
            self.written(tracked, given_up=True)

    def written(self, tracked: Tracked, given_up: bool = False) -> None:
        """Its Incident was written as it is now (or ``given_up``): the keys it absorbed are on record."""
        keys = tracked.unwritten | set(tracked.seen) if given_up else tracked.unwritten
        self.stored_alerts.update(key for key in keys if key in self.alerts)
        tracked.unwritten = set()

    def settled(self, keys: list[str]) -> set[str]:
        """Of these signal keys, those detection owes nothing more: the alert is no longer
        held (cleared or refused), or an Incident written to the API server carries it —
        written since it came, or before it came again (a redelivery after a restart)."""
        return {key for key in keys if key not in self.alerts or key in self.stored_alerts}

    def unopen(self, tracked: Tracked) -> None:
        """Its Incident could not be written: back to a candidate, and off the storm count."""
        window = self.opened_at.get(tracked.namespace)
        if window:
            window.pop()
        tracked.name = None

    def adopt(self, tracked: Tracked) -> None:
        """An open Incident found at start-up: carry on counting into it."""
        self.tracked[tracked.fingerprint] = tracked

    # --- decisions -----------------------------------------------------------------------

    def _home(self, root: Root) -> str:
        return root.namespace or self.operator_namespace

    def _track_for(self, root: Root, members: list[ResourceRef], now: dt.datetime) -> Tracked:
        fp = fingerprint(root)
        if fp in self.tracked:
            return self.tracked[fp]
        for other in list(self.tracked.values()):
            if other.aggregate or (other.root.namespace != root.namespace and "Node" not in (root.kind, other.root.kind)):
                continue
            direction = related(root, members, other.root, list(other.members.values()), self.index)
            if direction == "downstream":
                other.add_members([root.ref])
                return other
            if direction == "upstream":
                if root.kind == "Node" and (other.opened or not set(other.reasons) <= NODE_EXPLAINS):
                    continue  # a node going bad later does not explain an app's own trouble
                if other.opened:
                    other.add_members([root.ref])
                    return other
                # Not opened yet: the one depended on becomes the resource.
                del self.tracked[other.fingerprint]
                other.add_members([other.root.ref])
                other.root, other.fingerprint, other.namespace = root, fp, self._home(root)
                other.members.pop(f"{root.namespace}/{root.display}", None)
                self.tracked[fp] = other
                return other
        tracked = Tracked(root=root, namespace=self._home(root), fingerprint=fp, candidate_since=now, first_seen=now,
                          last_seen=now)
        self.tracked[fp] = tracked
        return tracked

    def due_signals(self, now: dt.datetime) -> list[Signal]:
        due = [s for signals in self.active.values() for s in signals if self._due(s) <= now and not self._by_design(s)]
        # An alert past its endsAt is over, even if Alertmanager never says so.
        for key in [k for k, s in self.alerts.items() if s.until is not None and s.until <= now]:
            del self.alerts[key]
            self.stored_alerts.discard(key)
        return due + list(self.alerts.values())

    def _due(self, signal: Signal) -> dt.datetime:
        """When a signal starts to count. What the log and metric sweeps conclude about a
        CronJob run waits as the run's failure does (``rerun_grace`` after it failed, for a
        later run to complete and make it history); a run still going is not judged yet. The
        sweep may read a failed run's logs before its Job shows Failed."""
        run = self.index.cron_run(signal.object, *signal.owners) if signal.source in SWEPT else None
        if run is None:
            return signal.due()
        failed_at = run[1].failed_at or signal.time
        return max(signal.due(), failed_at + dt.timedelta(seconds=self.th.rerun_grace))

    def _by_design(self, signal: Signal) -> bool:
        """Asked again at each decision, since what answers it may be seen after the signal:
        zero replicas while a twin serves (canary, blue/green) or since before we watched
        with nothing depending on it (an idle worker), a CronJob run a later run superseded, a
        Service that selects nothing while nobody names it (or that now selects something)."""
        if signal.reason == "ScaledToZero":
            return self.index.serving_twin(signal.object) or self.index.idle_at_zero(signal.object)
        if signal.reason == "SelectsNoPods":
            return not self.index.named_but_selects_nothing(signal.object)
        run = self.index.cron_run(signal.object, *signal.owners)
        return run is not None and self.index.superseded(run[0])

    def decide(self, now: dt.datetime) -> list[Operation]:
        # A node counts as unwell while it shows trouble and a little after (3 × settle): a
        # node status that flickers between two reports must not split one Incident in two.
        for signals in self.active.values():
            for s in signals:
                if s.source == SignalSource.NODE:
                    self.node_seen[s.object.name] = now
        linger = 3 * self.th.settle
        self.node_seen = {n: t for n, t in self.node_seen.items() if (now - t).total_seconds() <= linger}
        self.index.unwell_nodes = set(self.node_seen)
        groups: dict[Root, list[Signal]] = {}
        for signal in self.due_signals(now):
            groups.setdefault(root_of(signal, self.index), []).append(signal)
        # Nodes first, then the rest: pods fold into an unwell node before they open alone.
        touched: set[int] = set()
        for root in sorted(groups, key=lambda r: (r.kind != "Node", r.namespace, r.kind, r.name)):
            if self.muted and self.muted.get(self._home(root), now) > now:
                continue
            signals = groups[root]
            members = [m for s in signals for m in members_of(s, root, self.index)]
            tracked = self._track_for(root, members, now)
            tracked.absorb(signals, now)
            tracked.add_members(members)
            for signal in signals:
                tracked.severity = _max_severity(tracked.severity, signal.severity)
            tracked.severity = _max_severity(tracked.severity, self._whole_workload_down(tracked, signals))
            touched.add(id(tracked))
        operations: list[Operation] = []
        for tracked in list(self.tracked.values()):
            tracked.promote_members(lambda ref: self.index.top_of((), ref))
            active = id(tracked) in touched
            if active:
                tracked.clear_since = None
            elif tracked.clear_since is None:
                tracked.clear_since = now
            if not tracked.opened:
                if not active:
                    del self.tracked[tracked.fingerprint]  # cleared before it opened: a blip
                elif (now - tracked.candidate_since).total_seconds() >= self.th.settle:
                    operations.append(self._open(tracked, now))
            elif tracked.clear_since is not None and (now - tracked.clear_since).total_seconds() >= self.th.resolve_after:
                del self.tracked[tracked.fingerprint]
                operations.append(Resolve(tracked))
            elif tracked.dirty and (tracked.written_at is None
                                    or (now - tracked.written_at).total_seconds() >= self.write_interval):
                operations.append(Update(tracked))
        return operations

    def _whole_workload_down(self, tracked: Tracked, signals: list[Signal]) -> Severity:
        """critical when every replica of the root workload is in trouble (or it has none
        though a Service routes to it); high when at least half are."""
        if any(s.reason == "ScaledToZero" for s in signals) or tracked.root.kind == "Node" and any(
                s.reason in ("NodeNotReady", "NodeUnreachable") for s in signals):
            return Severity.CRITICAL
        info = self.index.workloads.get((tracked.root.namespace, tracked.root.kind, tracked.root.name))
        if info is None or not info.replicas:
            return Severity.LOW
        failing = len({s.uid for s in signals if s.object.kind == "Pod"})
        if failing >= info.replicas:
            return Severity.CRITICAL
        return Severity.HIGH if failing * 2 >= info.replicas else Severity.LOW

    def _open(self, tracked: Tracked, now: dt.datetime) -> Operation:
        window = self.opened_at.setdefault(tracked.namespace, deque())
        while window and (now - window[0]).total_seconds() > 60:
            window.popleft()
        if len(window) >= self.th.storm_per_minute and tracked.root.namespace:
            return self._fold_into_storm(tracked, now)
        window.append(now)
        tracked.name = incident_name(tracked.root, now)
        tracked.dirty = False
        tracked.written_at = now
        return Open(tracked)

    def _fold_into_storm(self, tracked: Tracked, now: dt.datetime) -> Operation:
        del self.tracked[tracked.fingerprint]
        root = Root("Namespace", tracked.root.namespace, tracked.root.namespace)
        fp = fingerprint(root)
        storm = self.tracked.get(fp)
        first = storm is None
        if storm is None:
            storm = Tracked(root=root, namespace=tracked.namespace, fingerprint=fp, candidate_since=now, first_seen=now,
                            last_seen=now, aggregate=True)
            self.tracked[fp] = storm
        storm.add_members([tracked.root.ref, *tracked.members.values()])
        for key in tracked.seen:
            storm.seen[key] = None
        storm.unwritten |= tracked.unwritten
        storm.occurrences += tracked.occurrences
        storm.pages.update(list(tracked.pages.items())[:MAX_PAGES - len(storm.pages)])
        for reason, count in tracked.reasons.items():
            storm.reasons.setdefault(reason, count)
        storm.severity = _max_severity(storm.severity, tracked.severity)
        storm.last_seen = now
        if first:
            storm.name = incident_name(root, now, prefix="storm")
            storm.written_at = now
            storm.dirty = False
            return Open(storm)
        storm.dirty = True
        return Update(storm)


def incident_name(root: Root, now: dt.datetime, prefix: str | None = None) -> str:
    """Readable and unique per opening: ``deployment-checkout-lq3v2a``."""
    stamp = _base36(int(now.timestamp() * 10))[-7:]
    base = f"{prefix or root.kind.lower()}-{root.name}".lower()[:52].rstrip("-.")
    return f"{base}-{stamp}"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"
