"""The scenario file format (``apiVersion: aisre.dev/scenario-v1``) as typed models.

The format is a contract (shared SCENARIOS.md): files written by other people must load
unchanged, so the field names here are the contract's, in camelCase on the wire. Unknown
keys are refused rather than ignored: a typo such as ``newPodOnly`` would otherwise change
what a scenario simulates without anybody noticing.

A few optional fields go beyond the contract and are documented in docs/scenarios.md:
``count`` on a runtime event and ``apiVersion`` on object references. ``patch.type`` is the
contract's: unset, a patch has ``kubectl patch`` semantics (strategic merge for built-in
kinds, JSON merge for custom resources).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from aisre.api.taxonomy import RootCauseCategory

SCENARIO_API_VERSION = "aisre.dev/scenario-v1"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration (``5s``, ``1m30s``, ``500ms``) or a plain number;
    negative values (``-30m``, used by metric series) keep their sign."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"not a duration (use e.g. 5s, 1m30s, 500ms): {value!r}")
    return sign * total


def _labels(value: Any) -> Any:
    # YAML reads `tier: 1` as an int; label values are strings on the API server.
    if isinstance(value, dict):
        return {str(k): ("true" if v is True else "false" if v is False else str(v)) for k, v in value.items()}
    return value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


def _manifests_text(value: Any) -> Any:
    """Multi-document YAML of Kubernetes objects: checked when the file is loaded, so a
    syntax error is that scenario's error before anything is applied."""
    if isinstance(value, str):
        try:
            docs = [d for d in yaml.safe_load_all(value) if d is not None]
        except yaml.YAMLError as error:
            raise ValueError(f"not valid YAML: {error}") from None
        bad = [d for d in docs if not isinstance(d, dict) or not d.get("kind")]
        if bad:
            raise ValueError(f"not a Kubernetes object (no kind): {str(bad[0])[:80]}")
    return value


Manifests = Annotated[str, AfterValidator(_manifests_text)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ObjectRef(_Model):
    """One object in the scenario namespace, by kind and name."""

    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    api_version: str | None = None


class PatchStep(_Model):
    target: ObjectRef
    patch: dict[str, Any] | list[dict[str, Any]]
    # Unset: `kubectl patch` semantics, strategic merge for built-in kinds (containers, env,
    # ports merge by their key) and JSON merge (RFC 7386) for custom resources, which have
    # no strategic-merge schema. `merge`, `strategic` or `json` (RFC 6902 list) override it.
    type: Literal["merge", "strategic", "json"] | None = None

    @model_validator(mode="after")
    def _list_only_for_json_patch(self) -> PatchStep:
        if isinstance(self.patch, list) != (self.type == "json"):
            raise ValueError("patch is a list of operations exactly when type is json")
        return self


class RuntimeState(str, Enum):
    """What the kubelet reports for a container (or the pod, for Evicted)."""

    RUNNING = "Running"
    NOT_READY = "NotReady"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    OOM_KILLED = "OOMKilled"
    ERROR = "Error"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    ERR_IMAGE_PULL = "ErrImagePull"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    RUN_CONTAINER_ERROR = "RunContainerError"
    INIT_RUNNING = "InitRunning"
    INIT_ERROR = "InitError"
    EVICTED = "Evicted"


INIT_STATES = frozenset({RuntimeState.INIT_RUNNING, RuntimeState.INIT_ERROR})


class RuntimeEvent(_Model):
    """An Event the kubelet would post about each matching pod."""

    type: Literal["Normal", "Warning"] = "Normal"
    reason: str = Field(min_length=1)
    message: str = ""
    count: int | None = Field(None, ge=1)  # extension; default in docs/scenarios.md


class RuntimeStep(_Model):
    """What the kubelet would report for the matching pods, from now on."""

    selector: Labels
    new_pods_only: bool = False
    container: str | None = None
    state: RuntimeState
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    restarts: int | None = Field(None, ge=0)
    events: list[RuntimeEvent] = Field(default_factory=list)
    logs: list[str] = Field(default_factory=list)
    previous_logs: list[str] = Field(default_factory=list)

    @field_validator("reason", "message", "container", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("selector")
    @classmethod
    def _selector_not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("selector must name at least one label (an empty selector would match every pod)")
        return value


class NodeCondition(_Model):
    type: str = Field(min_length=1)
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""

    @field_validator("status", mode="before")
    @classmethod
    def _yaml_bool(cls, value: Any) -> Any:
        return {True: "True", False: "False"}.get(value, value) if isinstance(value, bool) else value


# What the node lifecycle controller writes once a kubelet stops posting its status.
KUBELET_STOPPED = NodeCondition(type="Ready", status="Unknown", reason="NodeStatusUnknown",
                                message="Kubelet stopped posting node status.")


class NodeStep(_Model):
    """Node conditions to report on some nodes, until the scenario ends; or ``kubelet: stop``,
    a node whose kubelet stops. On the real node (``kubelet: real``) a node step stops the real
    kubelet (the runner starts it again afterwards), so it can only say that: ``kubelet: stop``
    or a Ready condition that is not True."""

    pod_selector: Labels | None = None
    name: str | None = None
    selector: Labels | None = None
    conditions: list[NodeCondition] = Field(default_factory=list)
    kubelet: Literal["stop"] | None = None

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> NodeStep:
        chosen = [k for k in ("pod_selector", "name", "selector") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("node: give exactly one of podSelector, name or selector")
        if not self.conditions and self.kubelet is None:
            raise ValueError("node: give conditions, or kubelet: stop")
        return self

    def reported_conditions(self) -> list[NodeCondition]:
        """The conditions a simulated node reports: the step's, else a stopped kubelet's."""
        return self.conditions or [KUBELET_STOPPED]

    def only_stops_the_kubelet(self) -> bool:
        """Whether a real kubelet stopping shows all this step says: nothing but a Ready that is not True."""
        return all(c.type == "Ready" and c.status != "True" for c in self.conditions)


class FaultStep(_Model):
    """One step of the fault: exactly one of the keys below."""

    apply: Manifests | None = None
    patch: PatchStep | None = None
    delete: ObjectRef | None = None
    runtime: RuntimeStep | None = None
    node: NodeStep | None = None
    # Series for Prometheus, validated and played by aisre.bench.metrics (docs/metrics.md).
    metrics: list[dict[str, Any]] | None = None
    wait: Seconds | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FaultStep:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a fault step has exactly one key of {', '.join(type(self).model_fields)}; got {given or 'none'}")
        if self.wait is not None and self.wait < 0:
            raise ValueError("wait must not be negative")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class ExpectedResource(_Model):
    """The object to fix; for kind Node, ``podSelector`` may stand for the name."""

    kind: str = Field(min_length=1)
    name: str | None = None
    pod_selector: Labels | None = None

    @model_validator(mode="after")
    def _named(self) -> ExpectedResource:
        if (self.name is None) == (self.pod_selector is None):
            raise ValueError("resource: give exactly one of name or podSelector")
        if self.pod_selector is not None and self.kind != "Node":
            raise ValueError("resource.podSelector is only for kind Node")
        return self


class ExpectedCause(_Model):
    category: RootCauseCategory
    resource: ExpectedResource | None = None


class Expect(_Model):
    incident: bool = True
    root_cause: ExpectedCause | None = None
    also_acceptable: list[ExpectedCause] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cause_for_incidents(self) -> Expect:
        if self.incident:
            if self.root_cause is None or self.root_cause.resource is None:
                raise ValueError("expect.rootCause with a resource is required when incident is true")
            if self.root_cause.category == RootCauseCategory.NO_FAULT:
                raise ValueError("an incident cannot have the root cause NoFault")
        for other in self.also_acceptable:
            if other.resource is None:
                raise ValueError("every alsoAcceptable entry needs a resource")
        return self


# Steps that write what a kubelet (or the metrics of one) would report: a real kubelet writes
# these itself, so a `kubelet: real` scenario may not have them. (Its `node` steps stop the
# real kubelet instead.)
SIMULATION_STEPS = ("runtime", "metrics")


class Scenario(_Model):
    api_version: Literal["aisre.dev/scenario-v1"]
    name: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    # simulated: KWOK nodes, `runtime` steps say what the kubelet reports. real: the pods run
    # on the real node (aisre.bench.realnode) and fail by themselves.
    kubelet: Literal["simulated", "real"] = "simulated"
    setup: Manifests = ""
    fault: list[FaultStep] = Field(default_factory=list)
    expect: Expect

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_strings(cls, value: Any) -> Any:
        return [str(t) for t in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _real_kubelet_reports_itself(self) -> Scenario:
        if self.kubelet == "real":
            simulated = sorted({s.kind for s in self.fault if s.kind in SIMULATION_STEPS})
            if simulated:
                raise ValueError(f"kubelet: real scenarios cannot have {', '.join(simulated)} steps: "
                                 "the real kubelet reports what happens (say what breaks, not how it is reported)")
            if any(s.node is not None and not s.node.only_stops_the_kubelet() for s in self.fault):
                raise ValueError("kubelet: real scenarios play a node step by stopping the real kubelet: it can "
                                 "only say kubelet: stop, or a Ready condition that is not True")
        return self

    def runtime_steps(self) -> list[tuple[int, RuntimeStep]]:
        return [(i, s.runtime) for i, s in enumerate(self.fault) if s.runtime is not None]


def substitute(value: Any, namespace: str) -> Any:
    """``$NAMESPACE`` replaced in every string (keys included) of parsed YAML."""
    if isinstance(value, str):
        return value.replace("$NAMESPACE", namespace)
    if isinstance(value, list):
        return [substitute(v, namespace) for v in value]
    if isinstance(value, dict):
        return {substitute(k, namespace): substitute(v, namespace) for k, v in value.items()}
    return value
