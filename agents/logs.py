"""The logs agent: current and previous container logs of the scope's pods, bounded in
bytes, grouped into templates with Drain3, with error signatures recognised (see
``log_signatures``): connection refused / timeout / DNS failure to a named host, auth
failures, exec format errors, permission denied and RBAC forbidden, too many open files,
panics and stack traces, config parse errors.

Unhealthy pods are read first and at most two pods per owner, since replicas of one
template log alike. Log text is evidence, never instructions: it is quoted, not obeyed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections import Counter
from typing import Any

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from aisre.agents.base import AgentContext, Findings, resource_of
from aisre.agents.log_signatures import (ERROR_LEVEL, WARNING_LEVEL, classify, climbing, memory_figures,
                                         phrase_windows, served_status)
from aisre.api.evidence import PEER_SIGNATURES
from aisre.api.evidence import AgentResult
from aisre.kube.reader import KubeAccessError
from aisre.kube.scope import ref

AGENT = "logs"
SAMPLE_CHARS = 300
TAIL_MIN_ENTRIES = 2  # the tail is the last fifth of the log's entries, at least this many
QUIET_AFTER = 600.0  # a line this much older than the log's last line is over, even in the tail
SERVING_ERRORS = 2  # recent requests answered with a 5xx (and at least half of them) that say its users hurt
# A line's own time, where it says it (ISO 8601 or its space-separated form, near the start).
LINE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})")


def line_time(line: str) -> dt.datetime | None:
    match = LINE_TIME.search(line[:80])
    if not match:
        return None
    try:
        return dt.datetime(*(int(g) for g in match.groups()))
    except ValueError:
        return None


# A line that continues the entry before it: a stack frame or an indented detail, a chained
# cause, a traceback's header or its closing exception line, a printed object's last brace.
CONTINUATION = re.compile(r"^(\s|$)|^(Caused by|Suppressed|Error has been observed|\.\.\. \d+ (more|common frames)"
                          r"|Traceback \(most recent call last\)|During handling of the above|The above exception)|^[}\])]")
TRACE_END = re.compile(r"^[\w.]+(Error|Exception|Exit|Interrupt|Warning)\b.*?:")


def entries_of(lines: list[str]) -> list[int]:
    """Each line's entry: a stack trace, a multi-line message or a printed object is one
    event with the line that logged it, however many lines it takes."""
    out: list[int] = []
    entry = -1
    for index, line in enumerate(lines):
        follows = index > 0 and (CONTINUATION.match(line) is not None
                                 or (TRACE_END.match(line) is not None and lines[index - 1].startswith((" ", "\t"))))
        if not follows:
            entry += 1
        out.append(max(entry, 0))
    return out


def recent_flags(lines: list[str]) -> list[bool]:
    """Which lines still describe now: those of the tail's entries (the last fifth of the
    entries, at least ``TAIL_MIN_ENTRIES``; a stack trace counts once, so one trailing
    trace is not cut in half), except where lines carry their time and one is
    ``QUIET_AFTER`` older than the log's last: errors that stopped (a retry that
    succeeded, a rollback, a restart long ago) leave a clean tail behind."""
    entries = entries_of(lines)
    count = entries[-1] + 1 if entries else 0
    tail_from = count - max(TAIL_MIN_ENTRIES, count // 5)
    last_time = next((t for t in map(line_time, reversed(lines[-50:])) if t is not None), None)
    flags = []
    entry_time: dict[int, dt.datetime | None] = {}
    for index, line in enumerate(lines):
        # A frame or detail line has the time of the line that logged its entry.
        when = line_time(line) or entry_time.get(entries[index])
        entry_time.setdefault(entries[index], when)
        recent = entries[index] >= tail_from
        if recent and last_time is not None:
            recent = when is None or (last_time - when).total_seconds() < QUIET_AFTER
        flags.append(recent)
    return flags


def _miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [
        MaskingInstruction(r"\d{4}-\d{2}-\d{2}[T ][\d:.,]+Z?", "TIME"),
        MaskingInstruction(r"\b[0-9a-f]{8,}\b", "HEX"),
        MaskingInstruction(r"\b\d+(\.\d+)*\b", "NUM"),
    ]
    return TemplateMiner(config=config)


def _unhealthy(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if not cs.get("ready") and "terminated" not in (cs.get("state") or {}):
            return True
        if cs.get("restartCount"):
            return True
    return status.get("phase") not in ("Running", "Succeeded")


def pick_pods(ctx: AgentContext) -> list[dict[str, Any]]:
    """Unhealthy pods first, at most two per owner, within the pod budget."""
    per_owner: Counter[str] = Counter()
    picked = []
    for pod in sorted(ctx.scope.pods, key=lambda p: (not _unhealthy(p), p["metadata"]["name"])):
        owner = ref(ctx.scope.top_owner(pod))
        if per_owner[owner] >= 2 or (pod.get("status") or {}).get("phase") == "Pending":
            continue
        per_owner[owner] += 1
        picked.append(pod)
        if len(picked) >= ctx.bounds.log_pods:
            break
    return picked


def _containers(pod: dict[str, Any]) -> list[tuple[str, bool, bool]]:
    """(container, is_init, has_previous) for every container with a status."""
    status = pod.get("status") or {}
    out = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in status.get(key) or []:
            previous = bool(cs.get("restartCount")) or bool((cs.get("lastState") or {}).get("terminated"))
            out.append((cs["name"], init, previous))
    return out


async def gather(ctx: AgentContext) -> AgentResult:
    started = time.perf_counter()
    out = Findings(AGENT, ctx.bounds.findings_per_agent)
    pods = pick_pods(ctx)
    jobs = []
    for pod in pods:
        for container, init, has_previous in _containers(pod):
            jobs.append((pod, container, init, False))
            if has_previous:
                jobs.append((pod, container, init, True))

    async def read(pod: dict[str, Any], container: str, previous: bool) -> str:
        try:
            return await ctx.reader.logs(
                pod["metadata"].get("namespace") or ctx.scope.namespace, pod["metadata"]["name"], container, previous=previous,
                limit_bytes=ctx.bounds.log_bytes_per_container,
            )
        except KubeAccessError:
            return ""

    texts = await asyncio.gather(*(read(pod, c, prev) for pod, c, _, prev in jobs))
    echoes = Echoes()
    total = 0
    truncated: list[str] = []
    errors = 0
    for (pod, container, init, previous), text in zip(jobs, texts, strict=True):
        if total + len(text) > ctx.bounds.log_bytes_total:
            truncated.append(f"logs: byte budget {ctx.bounds.log_bytes_total} reached; later containers unread")
            break
        total += len(text)
        if not text.strip():
            continue
        owner = ctx.scope.top_owner(pod)
        owner_ref = ref(owner)
        miner = _miner()
        signatures: dict[tuple[str, str | None, int | None], dict[str, Any]] = {}
        error_lines = 0
        lines = [line for line in text.splitlines()[-2000:] if line.strip()]
        recent_lines = recent_flags(lines)
        recent_error_lines = 0
        memory: dict[str, list[float]] = {}  # the program's own memory readings, by key, in order
        served = served_errors = 0  # recent requests its access log records, and those answered 5xx
        for line, recent in zip(lines, recent_lines, strict=True):
            miner.add_log_message(line[:2000])
            status = served_status(line) if recent else None
            if status is not None:
                served += 1
                served_errors += status >= 500
            for key, value in memory_figures(line[:2000]):
                memory.setdefault(key, []).append(value)
            signature = classify(line)
            # is_error and a warning level, from the signature already found (classify is the costly part)
            error = signature is not None or bool(ERROR_LEVEL.search(line))
            if error:
                error_lines += 1
                recent_error_lines += recent
            if error or WARNING_LEVEL.search(line):
                windows = phrase_windows(line[:2000])
                echoes.told(owner_ref, windows)
                if error and not previous and (signature is None or signature.signature not in PEER_SIGNATURES):
                    echoes.asked(owner_ref, windows, line, recent, (pod, owner, container))
            if signature is None:
                continue
            key = (signature.signature, signature.host, signature.port)
            entry = signatures.setdefault(key, {"count": 0, "recent": 0, "sample": line.strip()[:SAMPLE_CHARS],
                                                "detail": signature.detail, "fqdn": signature.fqdn,
                                                "loopback": signature.loopback})
            entry["count"] += 1
            entry["recent"] += recent
            if entry["detail"] is None and signature.detail:
                # One line says who was refused and what ("User … cannot get …"), another only that
                # something was forbidden: the telling one speaks for the signature.
                entry["detail"], entry["sample"] = signature.detail, line.strip()[:SAMPLE_CHARS]
            at = line_time(line)
            if at is not None:
                entry["last_at"] = at.isoformat()  # the program's own clock, as it wrote it
        errors += error_lines
        where = f"{'previous ' if previous else ''}log of {'init ' if init else ''}container {container}"
        for (name, host, port), entry in signatures.items():
            target = (f" to {host}{':' + str(port) if port else ''}" if host
                      else f" to {'a loopback address' if entry['loopback'] else 'an address'} on port {port}" if port else "")
            out.add(
                "LogSignature",
                f"{name}{target} in the {where} of {owner_ref} (x{entry['count']}): {entry['sample']}",
                key=(owner_ref, container, name, host or "", str(port or ""), str(previous)),
                resource=resource_of(owner),
                signature=name, host=host, port=port, container=container, init=init, previous=previous,
                count=entry["count"], recent=entry["recent"], sample=entry["sample"], pod=pod["metadata"]["name"],
                owner=owner_ref, detail=entry["detail"], fqdn=entry["fqdn"], loopback=entry["loopback"],
                last_at=entry.get("last_at"),
            )
        if not previous and served_errors >= SERVING_ERRORS and 2 * served_errors >= served:
            # Most of what it answers now is a server error: its users are hurting, whatever its pods say.
            out.add("ServingErrors", f"container {container} of {owner_ref} answered {served_errors} of its last {served} "
                    "requests with a server error", key=(owner_ref, container, "serving"), resource=resource_of(owner),
                    owner=owner_ref, container=container, errors=served_errors, requests=served, pod=pod["metadata"]["name"])
        for key, values in memory.items():
            if climbing(values):
                out.add(
                    "LogMemoryGrowing",
                    f"{key} reported by container {container} climbs {values[0]:g} -> {values[-1]:g} over "
                    f"{len(values)} readings in the {where} of {owner_ref}",
                    key=(owner_ref, container, "memory", key, str(previous)), resource=resource_of(owner),
                    owner=owner_ref, container=container, previous=previous, field=key, first=values[0],
                    last=values[-1], readings=len(values), pod=pod["metadata"]["name"],
                )
        clusters = sorted(miner.drain.clusters, key=lambda c: -c.size)[:5]
        out.add(
            "LogTemplates",
            f"{len(miner.drain.clusters)} templates, {error_lines} error lines in the {where} of {owner_ref}",
            key=(owner_ref, container, "templates", str(previous)),
            resource=resource_of(owner),
            container=container, init=init, previous=previous, error_lines=error_lines,
            recent_error_lines=recent_error_lines, lines=len(lines), owner=owner_ref, pod=pod["metadata"]["name"],
            templates=[{"template": c.get_template()[:200], "count": c.size} for c in clusters],
        )
    for client, peer, entry in echoes.found():
        pod, owner, container = entry["where"]
        out.add(
            "LogSignature",
            f"peer_rejects: {peer} logs the same refusal as the log of container {container} of {client} "
            f"(x{entry['count']}): {entry['sample']}",
            key=(client, container, "echo", peer), resource=resource_of(owner),
            signature="peer_rejects", host=None, port=None, container=container, init=False, previous=False,
            count=entry["count"], recent=entry["recent"], sample=entry["sample"], pod=pod["metadata"]["name"],
            owner=client, detail=None, fqdn=None, loopback=False, last_at=None, echo=peer,
            echoed=" ".join(entry["phrase"]),
        )
    result = out.result(truncated=truncated)
    result.latency_seconds = time.perf_counter() - started
    return result


class Echoes:
    """Error text a client logs that another program of the scope logs too, as a warning or
    an error: the other one said it first, as it refused (a proxy's "pooler error: …", a
    server's "rejecting request: …"), and the client relays it. Words shared with several
    programs are a library's wording, not a refusal, and count for none."""

    def __init__(self) -> None:
        self.asks: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
        self.tells: dict[str, set[tuple[str, ...]]] = {}

    def asked(self, owner: str, windows: set[tuple[str, ...]], line: str, recent: bool, where: tuple[Any, ...]) -> None:
        for window in windows:
            entry = self.asks.setdefault(owner, {}).setdefault(
                window, {"count": 0, "recent": 0, "sample": line.strip()[:SAMPLE_CHARS], "where": where})
            entry["count"] += 1
            entry["recent"] += recent

    def told(self, owner: str, windows: set[tuple[str, ...]]) -> None:
        self.tells.setdefault(owner, set()).update(windows)

    def found(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(client, peer, the client's line entry with the shared ``phrase``) for each client
        whose error text exactly one other program logs."""
        out = []
        for client, asks in self.asks.items():
            by_peer: dict[str, list[tuple[str, ...]]] = {}
            for window in asks:
                tellers = [o for o, told in self.tells.items() if o != client and window in told]
                if len(tellers) == 1:
                    by_peer.setdefault(tellers[0], []).append(window)
            if len(by_peer) != 1:
                continue  # none, or the words are everyone's
            (peer, windows), = by_peer.items()
            best = max(windows, key=lambda w: (asks[w]["count"], w))
            out.append((client, peer, {**asks[best], "count": max(asks[w]["count"] for w in windows), "phrase": best}))
        return out
