"""The fault-pattern library: evidence → candidate root causes.

Each pattern reads the evidence index and proposes candidates of one taxonomy category,
each naming the resource to fix and citing the findings it rests on. Scores say how
specific the evidence is (an image pull refused with "unauthorized" is near-certain; a
crash with a stack trace after a rollout is an inference), before calibration. Patterns
look at kinds, reasons, messages and structure only — never at object names.

Patterns about a workload only fire while it is hurting now (``EvidenceIndex.impacted``),
so the past — one restart long ago, a pod that was briefly Pending — is not a fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from aisre.api.evidence import PEER_SIGNATURES, Finding
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.ranking.candidate import Candidate
from aisre.ranking.causal import known_services
from aisre.ranking.evidence import EvidenceIndex, persistent_errors

Pattern = Callable[[EvidenceIndex], Iterable[Candidate]]
PATTERNS: list[Pattern] = []

AUTH_PULL = re.compile(
    r"\b401\b|unauthori[sz]ed|authentication required|no basic auth credentials|authorization failed|failed to authorize"
    r"|invalid username/password|denied: requested access|insufficient_scope|403 forbidden|image pull secrets"
    r"|toomanyrequests|pull rate limit", re.I)  # the last: anonymous pulls throttled; credentials lift the limit
# A refusal of the credentials presented (not a throttle). A 403 counts too: registries answer
# it to an expired token (ECR, GCR) as to a scope the credentials lost, and where nothing about
# the pull changed, either is what the Secret holds.
AUTH_REFUSED = re.compile(r"\b40[13]\b|unauthori[sz]ed|invalid username/password|authentication required", re.I)
IMAGE_MISSING = re.compile(
    r"not found|manifest unknown|name unknown|does not exist|invalid reference format|no such host|InvalidImageName", re.I)
INSUFFICIENT = re.compile(r"Insufficient (cpu|memory|pods|ephemeral-storage|nvidia|[a-z0-9./-]+)|Too many pods", re.I)
CONSTRAINT = re.compile(
    r"didn't match Pod's node affinity|node affinity/selector|untolerated taint|had taint|didn't match pod (anti-)?affinity"
    r"|didn't match pod topology spread|node\(s\) didn't satisfy|node\(s\) were unschedulable|didn't have free ports", re.I)
UNBOUND_CLAIM = re.compile(r"unbound (immediate )?PersistentVolumeClaims|persistentvolumeclaim \"[^\"]+\" not found|volume node affinity", re.I)
QUOTA = re.compile(r"(?:exceeded|failed) quota:\s*([a-z0-9][a-z0-9.-]*)", re.I)  # used up, or needs requests/limits
CONFIG_NOT_FOUND = re.compile(r"(configmap|secret)s? \"([^\"]+)\" not found", re.I)
KEY_NOT_FOUND = re.compile(r"couldn't find key (\S+) in (ConfigMap|Secret) [^/\s]+/([a-z0-9.-]+)", re.I)
BAD_COMMAND = re.compile(
    r"executable file not found|no such file or directory|exec: \"[^\"]*\": (stat|permission)|permission denied"
    r"|OCI runtime (create|exec) failed|starting container process caused|not found in \$PATH", re.I)
EXEC_FORMAT = re.compile(r"exec format error", re.I)
LIVENESS = re.compile(r"liveness probe|failed liveness", re.I)
STARTUP = re.compile(r"startup probe", re.I)
READINESS = re.compile(r"readiness probe", re.I)
# A probe aimed where nothing answers: no listener on its port, no such path, no such command.
# A probe that cannot run as written: its command is not in the image, or the program
# rejects the probe's request itself (4xx: a path it does not serve, a Host it refuses).
PROBE_CANNOT_RUN = re.compile(r"statuscode: 4\d\d|executable file not found|not found in \$PATH|probe errored", re.I)
PROBE_MISSES = re.compile(r"connection refused|statuscode: 4\d\d|no such file|executable file not found|not found in \$PATH"
                          r"|probe errored"  # the kubelet could not even run it (a port name the container lacks)
                          r"|connect: no route|server misbehaving|HTTP response to HTTPS client|malformed HTTP", re.I)
NODE_PRESSURE = re.compile(r"node was low on resource|node had condition|NodeNotReady|node .* not ready|DiskPressure|MemoryPressure", re.I)


def pattern(fn: Pattern) -> Pattern:
    PATTERNS.append(fn)
    return fn


def _ids(*groups: Iterable[Finding | None]) -> list[str]:
    seen: list[str] = []
    for group in groups:
        for finding in group:
            if finding is not None and finding.id not in seen:
                seen.append(finding.id)
    return seen


def _events(ix: EvidenceIndex, owner: str, pattern_: re.Pattern[str], *reasons: str) -> list[Finding]:
    return [e for e in ix.of(owner, "Event") if (not reasons or e.data.get("reason") in reasons)
            and pattern_.search(_messages([e]))]


def _messages(findings: Iterable[Finding]) -> str:
    return " ".join(" ".join(f.data.get("messages") or [f.data.get("message", "") or ""]) for f in findings)


@pattern
def image_pull(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("ContainerWaiting"):
        if finding.data.get("reason") not in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"):
            continue
        owner = finding.data["owner"]
        pulls = [e for e in ix.of(owner, "Event") if e.data.get("reason") in ("Failed", "BackOff", "ErrImagePull",
                 "FailedToRetrieveImagePullSecret", "InspectFailed") and "image" in e.data.get("message", "").lower()]
        text = finding.data.get("message", "") + " " + _messages(pulls)
        fields = ix.changed_fields(owner)
        change = [ix.template_change(owner)] if fields & {"image", "imagePullSecrets", "serviceAccountName"} else []
        rotated = [c for c in ix.kind("ConfigChanged") if owner in (c.data.get("pull_secret_of") or [])]
        missing_secret = [m for m in ix.of(owner, "MissingReference") if m.data.get("pull_secret")]
        if AUTH_PULL.search(text) or rotated or missing_secret:
            for secret in rotated:
                yield Candidate(C.IMAGE_PULL_AUTH, f"Secret/{secret.data['name']}", 0.93,
                                f"the pull secret Secret/{secret.data['name']} changed and the registry now refuses "
                                f"{owner}'s image", _ids([finding, secret], pulls), "image_pull")
            # Credentials are presented, nothing about the pull changed, and the registry refuses
            # them: what the Secret holds no longer works (expired, revoked), not the workload.
            presented = [p for p in ix.of(owner, "PullSecrets") if p.data.get("existing")]
            stale = presented and not rotated and not change and not missing_secret and AUTH_REFUSED.search(text)
            for holder in presented if stale else []:
                secret_name = holder.data["existing"][0]
                yield Candidate(C.IMAGE_PULL_AUTH, f"Secret/{secret_name}", 0.92,
                                f"{owner} presents Secret/{secret_name} and the registry refuses it: its credentials "
                                "no longer work", _ids([finding, holder], pulls), "image_pull")
            yield Candidate(C.IMAGE_PULL_AUTH, owner, 0.9 if not rotated else 0.8,
                            f"the registry refuses to serve the image of {owner}: credentials (imagePullSecrets) "
                            "are missing or wrong", _ids([finding], pulls, change, missing_secret), "image_pull")
            yield Candidate(C.BAD_IMAGE, owner, 0.4, f"the image of {owner} cannot be pulled", _ids([finding], pulls), "image_pull")
            continue
        score = 0.93 if IMAGE_MISSING.search(text) else (0.88 if "image" in fields else 0.8)
        yield Candidate(C.BAD_IMAGE, owner, score, f"the image of {owner} cannot be pulled ({finding.data.get('reason')})"
                        + (" since the rollout changed it" if "image" in fields else ""),
                        _ids([finding], pulls, change), "image_pull")
        yield Candidate(C.IMAGE_PULL_AUTH, owner, 0.3, f"the registry may refuse {owner}'s image", _ids([finding]), "image_pull")


@pattern
def exec_format(ix: EvidenceIndex) -> Iterable[Candidate]:
    hits: dict[str, list[Finding]] = {}
    for finding in ix.kind("ContainerTerminated", "ContainerWaiting"):
        if EXEC_FORMAT.search(finding.data.get("message", "") or ""):
            hits.setdefault(finding.data["owner"], []).append(finding)
    for finding in ix.kind("LogSignature"):
        if finding.data.get("signature") == "exec_format":
            hits.setdefault(finding.data["owner"], []).append(finding)
    for owner, findings in hits.items():
        if ix.impacted(owner):
            yield Candidate(C.IMAGE_ARCH_MISMATCH, owner, 0.93, f"the image of {owner} is built for another CPU "
                            "architecture (exec format error)", _ids(findings, [ix.template_change(owner)]), "exec_format")


@pattern
def bad_command(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("ContainerWaiting", "ContainerTerminated"):
        owner = finding.data["owner"]
        reason = finding.data.get("reason", "")
        message = finding.data.get("message", "") or ""
        exit_code = finding.data.get("exit_code")
        start_failure = reason in ("RunContainerError", "StartError", "ContainerCannotRun", "CreateContainerError")
        if EXEC_FORMAT.search(message) or not ix.impacted(owner):
            continue
        if start_failure or exit_code in (126, 127) or (exit_code == 128 and BAD_COMMAND.search(message)):
            changed = ix.changed_fields(owner) & {"command", "args"}
            score = 0.9 if (BAD_COMMAND.search(message) or exit_code in (126, 127)) else 0.7
            yield Candidate(C.BAD_COMMAND, owner, min(0.95, score + (0.04 if changed else 0)),
                            f"the container command of {owner} cannot run (exit {exit_code}, {reason}): {message[:160]}",
                            _ids([finding], [ix.template_change(owner)] if changed else []), "bad_command")
    for finding in ix.kind("LogSignature"):
        owner = finding.data["owner"]
        if finding.data.get("signature") == "missing_file" and "$PATH" in finding.data.get("sample", "") and ix.impacted(owner):
            yield Candidate(C.BAD_COMMAND, owner, 0.75, f"{owner}'s entrypoint is not found", _ids([finding]), "bad_command")
        if finding.data.get("signature") == "bad_args" and ix.impacted(owner) and not finding.data.get("init"):
            changed = bool(ix.changed_fields(owner) & {"command", "args"})
            yield Candidate(C.BAD_COMMAND, owner, 0.9 if changed else 0.86, f"{owner}'s program rejects its command line: "
                            f"{finding.data.get('sample', '')[:160]}", _ids([finding], [ix.template_change(owner)] if changed else []),
                            "bad_command")


@pattern
def wrong_program(ix: EvidenceIndex) -> Iterable[Candidate]:
    """A rollout left a workload running another workload's program (its command dropped or
    replaced): nothing crashes, yet what it was there to do is not done."""
    for finding in ix.kind("RunsSameProgram"):
        owner = finding.data["owner"]
        yield Candidate(C.BAD_COMMAND, owner, 0.84, f"since its rollout {owner} runs the same program as "
                        f"{finding.data['other']} instead of its own (command {finding.data.get('command_before')} "
                        f"became {finding.data.get('command_after')})", _ids([finding], [ix.template_change(owner)]),
                        "wrong_program")


@pattern
def missing_config(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in list(ix.kind("ContainerWaiting")) + list(ix.kind("Event")):
        if finding.kind == "ContainerWaiting" and finding.data.get("reason") not in ("CreateContainerConfigError", "CreateContainerError"):
            continue
        if finding.kind == "Event" and finding.data.get("reason") not in ("FailedMount", "Failed"):
            continue
        owner = finding.data["owner"]
        message = _messages([finding])
        template_touched = bool(ix.changed_fields(owner) & {"env", "envFrom", "volumes", "volumeMounts"})
        key = KEY_NOT_FOUND.search(message)
        if key:
            obj = f"{key.group(2).capitalize() if key.group(2).lower() == 'secret' else 'ConfigMap'}/{key.group(3)}"
            yield Candidate(C.MISSING_CONFIG, obj, 0.86, f"{obj} lacks the key {key.group(1)} that {owner} reads",
                            _ids([finding]), "missing_config")
            yield Candidate(C.MISSING_CONFIG, owner, 0.8 if not template_touched else 0.88,
                            f"{owner} reads key {key.group(1)} that {obj} does not have", _ids([finding]), "missing_config")
            continue
        found = CONFIG_NOT_FOUND.search(message)
        if found:
            kind = "ConfigMap" if found.group(1).lower() == "configmap" else "Secret"
            obj = f"{kind}/{found.group(2)}"
            yield Candidate(C.MISSING_CONFIG, owner, 0.88, f"{owner} references {obj}, which does not exist",
                            _ids([finding], ix.of(owner, "MissingReference")), "missing_config")
            yield Candidate(C.MISSING_CONFIG, obj, 0.84, f"{obj}, which {owner} needs, does not exist",
                            _ids([finding]), "missing_config")
    for finding in ix.kind("MissingReference"):
        owner = finding.data["owner"]
        if finding.data["ref_kind"] in ("ConfigMap", "Secret") and not finding.data.get("pull_secret") and ix.impacted(owner):
            obj = f"{finding.data['ref_kind']}/{finding.data['name']}"
            yield Candidate(C.MISSING_CONFIG, owner, 0.8, f"{owner} references {obj}, which does not exist", _ids([finding]), "missing_config")
            yield Candidate(C.MISSING_CONFIG, obj, 0.78, f"{obj}, which {owner} needs, does not exist", _ids([finding]), "missing_config")


@pattern
def missing_config_in_logs(ix: EvidenceIndex) -> Iterable[Candidate]:
    """A program that says what configuration it misses ("DATABASE_URL is not set", "config
    file ... not found", ``KeyError: 'API_KEY'``): missing config, wherever it should come from."""
    for owner in ix.impacted_owners():
        said = _log_signatures(ix, owner, "missing_setting")
        if not said:
            continue
        sample = said[0].data.get("sample", "")[:160]
        keys = ix.of(owner, "MissingConfigKey")
        changed = [c for c in ix.kind("ConfigChanged") if owner in (c.data.get("used_by") or [])]
        touched = ix.changed_fields(owner) & {"env", "envFrom", "volumes", "volumeMounts"}
        yield Candidate(C.MISSING_CONFIG, owner, 0.88 if touched or not (keys or changed) else 0.84,
                        f"{owner} stops because configuration it needs is missing: {sample}",
                        _ids(said, [ix.template_change(owner)] if touched else [], keys), "missing_config")
        for key in keys:
            obj = f"ConfigMap/{key.data['name']}"
            yield Candidate(C.MISSING_CONFIG, obj, 0.87, f"{obj} lacks the key {key.data.get('item')} that {owner} reads: {sample}",
                            _ids([key], said), "missing_config")
        for config in changed:
            obj = f"{config.data['config_kind']}/{config.data['name']}"
            yield Candidate(C.MISSING_CONFIG, obj, 0.89, f"{obj} changed and no longer holds what {owner} needs: {sample}",
                            _ids([config], said), "missing_config")
        source = _config_source(ix, owner, sample)
        if source and not changed:
            yield Candidate(C.MISSING_CONFIG, source, 0.89, f"{source}, where {owner} takes its environment from, lacks what "
                            f"it needs: {sample}", _ids(said), "missing_config")


ENV_VARIABLE = re.compile(r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![A-Za-z0-9_])")
SECRET_LIKE = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.I)


def _config_source(ix: EvidenceIndex, owner: str, sample: str) -> str | None:
    """The ConfigMap or Secret a missing variable should come from: the one whose key fills
    it (``valueFrom``), else the one the workload takes its whole environment from."""
    uses = [(dst, data) for src, dst, data in ix.edges("uses") if src == owner and dst.split("/")[0] in ("ConfigMap", "Secret")]
    names = ENV_VARIABLE.findall(sample)
    for name in names:
        filled = [dst for dst, data in uses if name in (data.get("env_names") or [])]
        if len(filled) == 1:
            return filled[0]
    env_from = [dst for dst, data in uses if data.get("source") == "envFrom"]
    if len(env_from) > 1 and names:
        kind = "Secret" if SECRET_LIKE.search(names[0]) else "ConfigMap"
        env_from = [dst for dst in env_from if dst.startswith(kind + "/")]
    return env_from[0] if len(env_from) == 1 else None


@pattern
def error_logs(ix: EvidenceIndex) -> Iterable[Candidate]:
    """A workload whose current log goes on reporting errors, with no peer named (those the
    causal graph follows): abnormal on its own, and a suspect once its code changed."""
    for finding in ix.kind("LogTemplates"):
        data = finding.data
        if data.get("previous") or data.get("init") or not persistent_errors(finding):
            continue
        owner = data["owner"]
        if any(f.data.get("signature") in PEER_SIGNATURES and (f.data.get("host") or f.data.get("port"))
               for f in _log_signatures(ix, owner)):
            continue
        changed = "image" in ix.changed_fields(owner)
        yield Candidate(C.APPLICATION_ERROR, owner, 0.6 if changed else 0.35,
                        f"{owner} keeps logging errors ({data.get('error_lines')} of {data.get('lines')} lines)"
                        + (" since the rollout of a new image" if changed else ""),
                        _ids([finding], [ix.template_change(owner)] if changed else []), "error_logs")


CRASH_REASONS = {"CrashLoopBackOff", "Error", "RunContainerError"}


def _crashing(ix: EvidenceIndex, owner: str) -> list[Finding]:
    """Findings that say the owner's containers exit (not OOM, not start failures)."""
    out = []
    for finding in ix.of(owner, "ContainerWaiting", "ContainerTerminated"):
        if finding.data.get("init"):
            continue
        if finding.kind == "ContainerWaiting" and finding.data.get("reason") == "CrashLoopBackOff":
            out.append(finding)
        elif finding.kind == "ContainerTerminated" and finding.data.get("exit_code") not in (0, None) \
                and finding.data.get("reason") not in ("OOMKilled",) and (finding.data.get("current") or not finding.data.get("ready_now")):
            out.append(finding)
    return out


def _log_signatures(ix: EvidenceIndex, owner: str, *names: str) -> list[Finding]:
    return [f for f in ix.of(owner, "LogSignature") if not names or f.data.get("signature") in names]


@pattern
def memory(ix: EvidenceIndex) -> Iterable[Candidate]:
    for owner in ix.impacted_owners():
        oom = [f for f in ix.of(owner, "ContainerTerminated") if f.data.get("reason") == "OOMKilled"
               or (f.data.get("exit_code") == 137 and "oom" in (f.data.get("message", "") or "").lower())]
        oom += [e for e in ix.of(owner, "Event") if e.data.get("reason") in ("OOMKilling", "OOMKilled")]
        oom += _log_signatures(ix, owner, "oom")
        if not oom:
            continue
        changed = ix.changed_fields(owner) & {"resources"}
        yield Candidate(C.MEMORY_LIMIT_TOO_LOW, owner, 0.92 if changed else 0.86,
                        f"{owner}'s containers are OOMKilled: the memory limit is below the working set"
                        + (" since the rollout changed resources" if changed else ""),
                        _ids(oom, [ix.template_change(owner)] if changed else []), "memory")
        # A run-to-completion workload (a Job, a CronJob's run) climbs by design as it works
        # through its input: a bigger input needs a bigger limit, not a fix for a leak.
        batch = owner.partition("/")[0] in ("Job", "CronJob")
        if not changed and not batch:
            # The program's own memory readings climbing through a run (the one that was
            # killed, or the one since), or its own leak detector, is a leak's signature;
            # without them a leak is a guess.
            climbed = ix.of(owner, "LogMemoryGrowing") + _log_signatures(ix, owner, "leak")
            yield Candidate(C.MEMORY_LEAK, owner, 0.9 if climbed else 0.45,
                            f"{owner}'s memory climbs through each run until it is OOMKilled, by its own logs"
                            if climbed else f"{owner}'s memory may grow until it is OOMKilled", _ids(climbed, oom), "memory")


@pattern
def probes(ix: EvidenceIndex) -> Iterable[Candidate]:
    for owner in ix.impacted_owners():
        fields = ix.changed_fields(owner)
        liveness = _events(ix, owner, LIVENESS, "Unhealthy", "Killing")
        startup = _events(ix, owner, STARTUP, "Unhealthy", "Killing")
        readiness = _events(ix, owner, READINESS, "Unhealthy")
        not_ready = ix.of(owner, "ContainerNotReady")
        if liveness or startup:
            changed = bool(fields & {"livenessProbe", "startupProbe"})
            # The program answers; the probe cannot ask (a new image without the probe's command):
            # the kills are the probe's doing, whatever else the rollout changed.
            cannot_run = bool(PROBE_CANNOT_RUN.search(_messages([*liveness, *startup])))
            yield Candidate(C.LIVENESS_PROBE_FAILURE, owner, 0.9 if changed or cannot_run else 0.84,
                            f"the kubelet kills {owner}'s containers after failed liveness probes"
                            + (" since the rollout changed the probe" if changed else "")
                            + (" that cannot run as written" if cannot_run else ""),
                            _ids(liveness, startup, [ix.template_change(owner)] if changed else []), "probes")
        if readiness and (not_ready or any(f.kind == "WorkloadUnavailable" for f in ix.of(owner))):
            changed = "readinessProbe" in fields
            # A probe that reaches nothing (wrong port, path or command) is itself wrong; one the
            # program answers with "not ready" (5xx, an exec check's refusal) reports the
            # program's state, which its own cause explains.
            # A container that keeps exiting refuses every probe: that says nothing about the probe.
            exiting = bool(_crashing(ix, owner))
            wrong = changed or (bool(PROBE_MISSES.search(_messages(readiness))) and not exiting)
            cannot_run = changed and bool(PROBE_CANNOT_RUN.search(_messages(readiness)))  # the new probe is refused
            yield Candidate(C.READINESS_PROBE_FAILURE, owner,
                            (0.9 if cannot_run else 0.88) if changed else (0.84 if wrong else (0.3 if exiting else 0.58)),
                            f"{owner}'s pods never become Ready: the readiness probe fails"
                            + ("" if wrong else " (the program answers that it is not ready)"),
                            _ids(readiness, not_ready, [ix.template_change(owner)] if changed else []), "probes")
        elif not_ready and "readinessProbe" in fields:
            yield Candidate(C.READINESS_PROBE_FAILURE, owner, 0.7, f"{owner}'s pods are not Ready since the "
                            "readiness probe changed", _ids(not_ready, [ix.template_change(owner)]), "probes")


@pattern
def scheduling(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in list(ix.kind("PodUnschedulable")) + [e for e in ix.kind("Event") if e.data.get("reason") == "FailedScheduling"]:
        owner = finding.data["owner"]
        message = _messages([finding])
        if finding.kind == "Event" and not ix.impacted(owner):
            continue
        if UNBOUND_CLAIM.search(message):
            continue  # a storage problem, see storage()
        if INSUFFICIENT.search(message):
            yield Candidate(C.INSUFFICIENT_RESOURCES, owner, 0.92, f"{owner}'s pods do not fit any node: {message[:200]}",
                            _ids([finding]), "scheduling")
        if CONSTRAINT.search(message):
            yield Candidate(C.SCHEDULING_CONSTRAINT, owner, 0.9, f"no node satisfies {owner}'s placement constraints: "
                            f"{message[:200]}", _ids([finding]), "scheduling")


@pattern
def storage(ix: EvidenceIndex) -> Iterable[Candidate]:
    claims = {f.data["claim"]: f for f in ix.kind("PVCNotBound")}
    users: dict[str, list[str]] = {}
    for src, dst, _ in ix.edges("uses") + ix.edges("mounts"):
        if dst.startswith("PersistentVolumeClaim/"):
            users.setdefault(dst, []).append(src)
    for claim, finding in claims.items():
        impacted = [o for o in users.get(claim, []) if ix.impacted(o)]
        if impacted or not users.get(claim):
            score = 0.9 if impacted else 0.6
            yield Candidate(C.STORAGE_FAILURE, claim, score, f"{claim} is not bound"
                            + (f"; {', '.join(impacted)} cannot start" if impacted else ""), _ids([finding]), "storage")
    for finding in ix.kind("MissingReference"):
        owner = finding.data["owner"]
        if finding.data["ref_kind"] == "PersistentVolumeClaim" and ix.impacted(owner):
            claim = f"PersistentVolumeClaim/{finding.data['name']}"
            yield Candidate(C.STORAGE_FAILURE, claim, 0.88, f"{owner} mounts {claim}, which does not exist", _ids([finding]), "storage")
            yield Candidate(C.STORAGE_FAILURE, owner, 0.6, f"{owner} mounts a claim that does not exist", _ids([finding]), "storage")
    for event in ix.kind("Event"):
        if event.data.get("reason") in ("FailedMount", "FailedAttachVolume", "ProvisioningFailed") and ix.impacted(event.data["owner"]):
            message = _messages([event])
            if CONFIG_NOT_FOUND.search(message):
                continue
            claim = next((c for c in users if c.split("/", 1)[1] in message), None) or event.data["owner"]
            if claim.startswith("PersistentVolumeClaim/"):
                yield Candidate(C.STORAGE_FAILURE, claim, 0.85, f"volumes of {event.data['owner']} cannot be mounted: {message[:160]}",
                                _ids([event]), "storage")


@pattern
def disk_full(ix: EvidenceIndex) -> Iterable[Candidate]:
    """A program that reports its own disk full: the volume it writes to is the root."""
    for owner in ix.impacted_owners():
        full = _log_signatures(ix, owner, "disk_full")
        if not full:
            continue
        claims = sorted({dst for src, dst, _ in ix.edges("uses") + ix.edges("mounts")
                         if src == owner and dst.startswith("PersistentVolumeClaim/")})
        for claim in claims:
            yield Candidate(C.STORAGE_FAILURE, claim, 0.9 if len(claims) == 1 else 0.8,
                            f"{claim}, which {owner} writes to, is full: {full[0].data.get('sample', '')[:160]}",
                            _ids(full), "disk_full")
        if not claims:
            yield Candidate(C.STORAGE_FAILURE, owner, 0.7, f"{owner}'s disk is full: {full[0].data.get('sample', '')[:160]}",
                            _ids(full), "disk_full")


@pattern
def quota(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in list(ix.kind("ReplicaFailure")) + [e for e in ix.kind("Event") if e.data.get("reason") == "FailedCreate"]:
        match = QUOTA.search(_messages([finding]))
        if match:
            name = match.group(1).rstrip(",.")
            exhausted = [q for q in ix.kind("QuotaExhausted") if q.data.get("quota") == f"ResourceQuota/{name}"]
            yield Candidate(C.RESOURCE_QUOTA_EXCEEDED, f"ResourceQuota/{name}", 0.93,
                            f"ResourceQuota/{name} refuses new pods of {finding.data.get('owner')}", _ids([finding], exhausted), "quota")


@pattern
def nodes(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("NodeNotReady", "NodePressure"):
        node = f"Node/{finding.resource.name}" if finding.resource else ""
        pods = set(finding.data.get("pods") or [])
        affected = [o for o in ix.impacted_owners() if any(set(f.data.get("pods") or []) & pods for f in ix.of(o))]
        score = 0.92 if affected else 0.7
        yield Candidate(C.NODE_FAILURE, node, score, f"{node} is unhealthy ({finding.data.get('reason') or finding.data.get('condition')})"
                        + (f"; {', '.join(affected)} fail on it" if affected else ""), _ids([finding]), "nodes")
    for finding in ix.kind("PodEvicted"):
        if NODE_PRESSURE.search(finding.data.get("message", "") or "") and finding.data.get("node"):
            node = f"Node/{finding.data['node']}"
            yield Candidate(C.NODE_FAILURE, node, 0.75, f"pods of {finding.data['owner']} were evicted from {node}: "
                            f"{finding.data.get('message', '')[:160]}", _ids([finding]), "nodes")


@pattern
def scaled_to_zero(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("WorkloadScaledToZero"):
        owner = finding.data["owner"]
        changes = ix.of(owner, "ReplicasChanged")
        routed, dependents = ix.dependents_through_services(owner)
        # Relevance: a Service in front of it that nobody uses (its metrics endpoint) hurts no one;
        # a zero someone set just now, or one that clients depend on, does.
        score = 0.88 if changes else (0.75 if dependents else (0.45 if routed else 0.4))
        twins = ix.healthy_twins(owner)
        if twins:  # another workload runs the same program and serves: by design (canary, blue/green)
            score *= 0.4
        yield Candidate(C.SCALED_TO_ZERO, owner, score, f"{owner} is scaled to zero replicas"
                        + (f" (set by {changes[-1].data.get('manager')})" if changes else "")
                        + (f"; {', '.join(twins)} runs the same program and is healthy" if twins else ""),
                        _ids([finding], changes), "scaled_to_zero")


@pattern
def init_containers(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("ContainerWaiting", "ContainerTerminated"):
        if not finding.data.get("init"):
            continue
        owner = finding.data["owner"]
        if finding.kind == "ContainerTerminated" and finding.data.get("exit_code") == 0:
            continue
        if not ix.impacted(owner):
            continue
        yield Candidate(C.INIT_CONTAINER_FAILURE, owner, 0.86, f"init container {finding.data.get('container')} of {owner} "
                        f"fails ({finding.data.get('reason')}, exit {finding.data.get('exit_code')})", _ids([finding]), "init")
    # An init container that is still running holds the pod back as surely as one that fails.
    for finding in ix.kind("InitContainerRunning"):
        owner = finding.data["owner"]
        yield Candidate(C.INIT_CONTAINER_FAILURE, owner, 0.74, f"init container {finding.data.get('container')} of {owner} "
                        "has not finished, so the pod cannot start", _ids([finding]), "init")


@pattern
def crashes(ix: EvidenceIndex) -> Iterable[Candidate]:
    """Containers that start and exit: a config change, a new rollout's code, or unknown."""
    configs = list(ix.kind("ConfigChanged"))
    for owner in ix.impacted_owners():
        crash = _crashing(ix, owner) + [f for f in ix.of(owner, "ContainerNotReady")]
        if not crash:
            continue
        fields = ix.changed_fields(owner)
        change = ix.template_change(owner)
        logs = _log_signatures(ix, owner)
        config_logs = [f for f in logs if f.data.get("signature") in ("config_parse", "auth_failure")]
        app_logs = [f for f in logs if f.data.get("signature") in ("panic",)]
        errors = [f for f in ix.of(owner, "LogTemplates") if f.data.get("error_lines")]
        changed_config = [c for c in configs if owner in (c.data.get("used_by") or [])]
        # RBAC refusals, exec format errors, OOMs and missing binaries have patterns of their own.
        explained = bool(_log_signatures(ix, owner, "forbidden", "exec_format", "oom", "missing_setting", "bad_args", "disk_full"))
        missing = bool(_log_signatures(ix, owner, "missing_setting"))
        for config in changed_config:
            obj = f"{config.data['config_kind']}/{config.data['name']}"
            score = (0.82 + (0.08 if config_logs else 0) + (0.03 if "restartedAt" in fields else 0)) * (0.9 if missing else 1.0)
            optional = [k for src, dst, data in ix.edges("uses") if src == owner and dst == obj for k in data.get("optional_keys") or []]
            if optional and not config_logs:
                # Keys read only if present: a change that renamed or dropped one leaves the
                # variable unset rather than wrong, and the program stops for want of it.
                yield Candidate(C.MISSING_CONFIG, obj, 0.87, f"{obj} changed and {owner}, which reads "
                                f"{', '.join(optional[:3])} from it only if present, now fails", _ids([config], crash[:2]),
                                "crashes")
                score *= 0.92
            yield Candidate(C.BAD_CONFIG_CHANGE, obj, min(score, 0.93), f"{obj} changed and {owner} now fails",
                            _ids([config], crash[:2], config_logs), "crashes")
        env_only = fields and fields <= {"env", "envFrom", "restartedAt"} and "env" in fields | {"envFrom"} and fields & {"env", "envFrom"}
        if env_only:
            yield Candidate(C.BAD_CONFIG_CHANGE, owner, 0.85 if config_logs or crash else 0.7,
                            f"the rollout of {owner} changed its environment and it now fails", _ids([change], crash[:2], config_logs), "crashes")
        if "image" in fields:
            score = (0.8 + (0.08 if app_logs or errors else 0)) * (0.6 if explained else 1.0)
            yield Candidate(C.APPLICATION_ERROR, owner, score, f"the new version of {owner} fails after the rollout "
                            "(errors in its logs, no config change)", _ids([change], crash[:2], app_logs, errors[:1]), "crashes")
        elif not changed_config and not env_only:
            score = (0.55 if app_logs else (0.45 if config_logs or errors else 0.35)) * (0.6 if explained else 1.0)
            yield Candidate(C.APPLICATION_ERROR, owner, score, f"{owner} fails with errors in its own logs",
                            _ids(crash[:2], app_logs, errors[:1]), "crashes")
            if config_logs:
                yield Candidate(C.BAD_CONFIG_CHANGE, owner, 0.5, f"{owner}'s configuration is rejected at start",
                                _ids(crash[:2], config_logs), "crashes")


@pattern
def rbac(ix: EvidenceIndex) -> Iterable[Candidate]:
    bindings = list(ix.kind("RoleBinding"))
    roles = {f.data["role"]: f for f in ix.kind("Role")}
    for finding in ix.kind("LogSignature"):
        if finding.data.get("signature") != "forbidden":
            continue
        owner = finding.data["owner"]
        detail = finding.data.get("detail") or {}
        sa, verb, resource = detail.get("sa"), detail.get("verb"), detail.get("resource")
        def grants(rules: list[dict]) -> bool:
            return any(("*" in (r.get("verbs") or []) or verb in (r.get("verbs") or []))
                       and ("*" in (r.get("resources") or []) or resource in (r.get("resources") or [])) for r in rules)
        own = [b for b in bindings if sa and any(s.get("kind") == "ServiceAccount" and s.get("name") == sa for s in b.data.get("subjects") or [])]
        # Several Roles bound to it, none granting: the one whose own purpose the refused line
        # speaks of (`leaderelection.go` … for Role/x-leader-election) is the one to widen.
        lacking = [b.data.get("role", "") for b in own if b.data.get("role_exists") and not grants(b.data.get("rules") or [])]
        spoken = _roles_the_line_names(lacking, finding.data.get("sample", ""), {sa or "", owner.partition("/")[2]})
        proposed = False
        for binding in own:
            role = binding.data.get("role", "")
            if not binding.data.get("role_exists"):
                yield Candidate(C.RBAC_DENIED, role, 0.86, f"{binding.data['binding']} grants {role}, which does not exist",
                                _ids([finding, binding]), "rbac")
                proposed = True
            elif not grants(binding.data.get("rules") or []):
                yield Candidate(C.RBAC_DENIED, role, 0.8 if spoken and role not in spoken else 0.88,
                                f"{role} does not allow {verb} on {resource} for ServiceAccount/{sa}",
                                _ids([finding, binding, roles.get(role)]), "rbac")
                yield Candidate(C.RBAC_DENIED, binding.data["binding"], 0.55, f"{binding.data['binding']} binds too little",
                                _ids([finding, binding]), "rbac")
                proposed = True
        if not proposed:
            for binding in bindings:
                if grants(binding.data.get("rules") or []):
                    yield Candidate(C.RBAC_DENIED, binding.data["binding"], 0.86, f"{binding.data['binding']} grants "
                                    f"{verb} on {resource} but not to ServiceAccount/{sa}", _ids([finding, binding]), "rbac")
                    yield Candidate(C.RBAC_DENIED, binding.data["role"], 0.5, "the role exists but is not bound to "
                                    f"ServiceAccount/{sa}", _ids([finding, binding]), "rbac")
                    proposed = True
        if not proposed:
            for role, role_finding in roles.items():
                if grants(role_finding.data.get("rules") or []):
                    yield Candidate(C.RBAC_DENIED, role, 0.7, f"{role} allows {verb} on {resource} but nothing binds it to "
                                    f"ServiceAccount/{sa}", _ids([finding, role_finding]), "rbac")
                    proposed = True
        if not proposed:
            yield Candidate(C.RBAC_DENIED, owner, 0.6, f"ServiceAccount/{sa} of {owner} may not {verb} {resource}", _ids([finding]), "rbac")


@pattern
def broken_services(ix: EvidenceIndex) -> Iterable[Candidate]:
    """A Service that routes nowhere, or to a port nobody listens on, is a fault on its own;
    the causal graph raises it further when clients are seen failing to reach it."""
    for finding in ix.kind("ServiceSelectorMatchesNothing"):
        relevance, who = _relevance(ix, finding.data["service"])
        score = (0.78 if finding.data.get("near") else 0.62) * relevance
        gone = _deleted_backend(ix, finding)
        if gone is not None:
            # The selector is right; what it selected was deleted: clients lost a dependency.
            yield Candidate(C.DEPENDENCY_FAILURE, finding.data["service"], 0.86 * relevance,
                            f"{finding.data['service']} routes nowhere: {gone.data['workload']}, which it selected, was "
                            f"deleted (its last event at {gone.data.get('last')})" + who, _ids([finding, gone]), "services")
            score *= 0.5
        yield Candidate(C.SERVICE_SELECTOR_MISMATCH, finding.data["service"], score,
                        f"{finding.data['service']} selects {finding.data.get('selector')}, which matches no pod" + who,
                        _ids([finding]), "services")
    for finding in ix.kind("ServicePortMismatch"):
        relevance, who = _relevance(ix, finding.data["service"])
        yield Candidate(C.SERVICE_PORT_MISMATCH, finding.data["service"], 0.8 * relevance,
                        f"{finding.data['service']} targets port {finding.data.get('target_port')}, which its pods do not "
                        "expose" + who, _ids([finding]), "services")


def _roles_the_line_names(roles: list[str], line: str, own_names: set[str]) -> set[str]:
    """Of several Roles, those a word of whose name (beyond the names of the account and the
    workload themselves) the line contains; none when that does not single any out."""
    if len(roles) < 2:
        return set()
    text = line.lower()
    common = {part for name in own_names for part in re.split(r"[-_.]", name.lower())}
    named = {role for role in roles
             if any(len(part) >= 4 and part not in common and part in text
                    for part in re.split(r"[-_.]", role.partition("/")[2].lower()))}
    return named if 0 < len(named) < len(roles) else set()


def _deleted_backend(ix: EvidenceIndex, selects_nothing: Finding) -> Finding | None:
    """A deleted workload that the Service's selector named: its name is the Service's or one
    of the selector's values (the usual ``app: <name>``)."""
    selector = selects_nothing.data.get("selector") or {}
    names = {selects_nothing.data["service"].partition("/")[2], *map(str, selector.values())}
    return next((f for f in ix.kind("WorkloadDeleted") if f.data.get("name") in names), None)


UNREACHED = {"connection_refused", "timeout", "no_servers"}  # what a Service without a listener behind it answers


def _relevance(ix: EvidenceIndex, service: str) -> tuple[float, str]:
    """How much a broken Service matters: fully when something that depends on it (a
    workload by env, config or logs, an Ingress) hurts; little when nothing depends on it
    (a leftover of a removed component is a finding for the report, not the root cause)."""
    users = {src for src, dst, _ in ix.edges("dependsOn") if dst == service}
    users |= {f.data["owner"] for f in ix.kind("LogSignature") if f.data.get("host") and f"Service/{f.data['host']}" == service}
    # A user that logs it cannot reach the Service (by its name, or by an address on the
    # Service's port) hurts, however healthy its own pods look: its requests fail.
    ports = set(known_services(ix).get(service, []))
    unreached = {f.data["owner"] for f in ix.kind("LogSignature") if f.data.get("signature") in UNREACHED
                 and f.data["owner"] in users and (f"Service/{f.data.get('host')}" == service
                                                   or (not f.data.get("host") and f.data.get("port") in ports))}
    hurting = sorted(u for u in users if (u.startswith("Ingress/") and ix.routes_nowhere(service)) or ix.impacted(u)
                     or u in unreached)
    if hurting:
        return 1.0, f"; {', '.join(hurting[:3])} depend on it"
    if users:
        return 0.7, f"; {', '.join(sorted(users)[:3])} depend on it but are not failing"
    return 0.4, "; nothing in scope depends on it"


@pattern
def network_policies(ix: EvidenceIndex) -> Iterable[Candidate]:
    for finding in ix.kind("NetworkPolicyBlocks"):
        blocked = finding.data.get("blocked") or []
        hurting = [b["client"] for b in blocked if ix.impacted(b["client"])]
        if hurting:
            yield Candidate(C.NETWORK_POLICY_BLOCK, finding.data["policy"], 0.85,
                            f"{finding.data['policy']} cuts {', '.join(sorted(set(hurting))[:3])} off from "
                            f"{', '.join(sorted({b['server'] for b in blocked})[:3])}", _ids([finding]), "network_policies")


# --- metric-only faults (the metrics agent's findings) ---------------------------------------
ONSET_TOLERANCE_S = 60.0  # anomalies this close together started "at the same time"


def _onset(findings: Iterable[Finding]) -> float | None:
    times = [f.time.timestamp() for f in findings if f.time is not None]
    return min(times) if times else None


@pattern
def cpu_saturation(ix: EvidenceIndex) -> Iterable[Candidate]:
    for owner in sorted({f.data["owner"] for f in ix.kind("CPUSaturated", "CPUThrottled")}):
        saturated, throttled = ix.of(owner, "CPUSaturated"), ix.of(owner, "CPUThrottled")
        follow = ix.of(owner, "LatencyHigh", "ErrorRateHigh")
        score = (0.86 if saturated and throttled else 0.82) + (0.04 if follow else 0.0)
        yield Candidate(C.CPU_SATURATION, owner, score, f"{owner} runs at its CPU limit"
                        + (" and is throttled" if throttled else "") + ("; latency/errors follow" if follow else ""),
                        _ids(saturated, throttled, follow), "cpu_saturation")


@pattern
def memory_metrics(ix: EvidenceIndex) -> Iterable[Candidate]:
    for owner in sorted({f.data["owner"] for f in ix.kind("MemoryGrowing", "MemoryNearLimit")}):
        growing, near = ix.of(owner, "MemoryGrowing"), ix.of(owner, "MemoryNearLimit")
        oom = [f for f in ix.of(owner, "ContainerTerminated") if f.data.get("reason") == "OOMKilled"]
        resized = bool(ix.changed_fields(owner) & {"resources"})
        # Near its limit and not climbing within the window: a limit too low, unless the
        # program reports a leak itself (a slow one climbs over more hours than the window).
        if not growing and near and not resized:
            growing = _log_signatures(ix, owner, "leak")
        if growing and not resized:
            yield Candidate(C.MEMORY_LEAK, owner, 0.88 + (0.04 if near or oom else 0.0),
                            f"{owner}'s working set climbs steadily without a change"
                            + (" and is near its limit" if near else ""), _ids(growing, near, oom), "memory_metrics")
            if near:
                yield Candidate(C.MEMORY_LIMIT_TOO_LOW, owner, 0.6, f"{owner}'s working set is near its memory limit",
                                _ids(near), "memory_metrics")
        elif near:
            yield Candidate(C.MEMORY_LIMIT_TOO_LOW, owner, 0.86 + (0.04 if resized or oom else 0.0),
                            f"{owner}'s working set sits at its memory limit"
                            + (" since the rollout changed resources" if resized else ""),
                            _ids(near, oom, [ix.template_change(owner)] if resized else []), "memory_metrics")
            yield Candidate(C.MEMORY_LEAK, owner, 0.4, f"{owner}'s memory may be growing", _ids(near), "memory_metrics")


def _callees(ix: EvidenceIndex, owner: str) -> list[tuple[str, str]]:
    """(workload, Service) pairs the owner depends on, through the Services it names."""
    routes = ix.edges("routesTo")
    return [(server, service) for src, service, _ in ix.edges("dependsOn") if src == owner
            for svc, server, _ in routes if svc == service and server != owner]


@pattern
def red_anomalies(ix: EvidenceIndex) -> Iterable[Candidate]:
    """Error-rate and latency rises: at the dependency where they started first, after a
    rollout of the workload's own code, or (weakly) in the workload itself."""
    red = ("ErrorRateHigh", "LatencyHigh")
    anomalous = {f.data["owner"] for f in ix.kind(*red, "CPUSaturated", "MemoryNearLimit", "MemoryGrowing")}
    for owner in sorted({f.data["owner"] for f in ix.kind(*red)}):
        own = ix.of(owner, *red)
        began = _onset(own)
        origins = []
        for server, service in _callees(ix, owner):
            if server not in anomalous:
                continue
            server_began = _onset(ix.of(server, *red, "CPUSaturated", "MemoryNearLimit", "MemoryGrowing"))
            if began is None or server_began is None or server_began <= began + ONSET_TOLERANCE_S:
                origins.append((server, service, ix.of(server)))
        for server, service, evidence in origins:
            yield Candidate(C.DEPENDENCY_FAILURE, server, 0.86, f"{owner}'s errors/latency follow {server} (behind "
                            f"{service}), whose own anomaly started first", _ids(own, [f for f in evidence if f.kind in
                            red + ("CPUSaturated", "MemoryNearLimit", "MemoryGrowing")]), "red_anomalies")
            yield Candidate(C.DEPENDENCY_FAILURE, service, 0.6, f"{service}'s backend degrades {owner}", _ids(own), "red_anomalies")
        if origins:
            continue
        errors = ix.of(owner, "ErrorRateHigh")
        change = ix.template_change(owner)
        if "image" in ix.changed_fields(owner):  # the new code is slower or fails more
            yield Candidate(C.APPLICATION_ERROR, owner, 0.88 if errors else 0.8, f"{owner}'s "
                            + ("error rate" if errors else "latency") + " rose after the rollout of a new image",
                            _ids(errors, [change], ix.of(owner, "LatencyHigh")), "red_anomalies")
        elif not ix.of(owner, "CPUSaturated", "CPUThrottled"):
            yield Candidate(C.APPLICATION_ERROR, owner, 0.5 if errors else 0.4, f"{owner}'s "
                            + ("error rate" if errors else "latency") + " rose with no change or dependency to explain it",
                            _ids(own), "red_anomalies")
