"""External signals read from Kafka → ``Signal``s, or the reason a record is refused (pure).

A producer outside the cluster sends the fleet envelope with ``type: signal`` and, as
``data``, an ``ExternalSignal``: its ``ingest_id`` (the producer's id of the observation:
the same id sent twice is one signal), a reason, a severity, whether it fires, and the
``entity`` it concerns (a namespace and a workload, pod, job or service). The ``Signal``
it becomes is dedupe-keyed by the ingest id alone, so a record Kafka delivers again (after
a crash before the commit) folds into what is already held.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisre.api.meta import ResourceRef
from aisre.api.signal import Signal, SignalSource, signal_key
from aisre.api.taxonomy import Severity
from aisre.fleet.envelope import Envelope

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_RECORD = 256 * 1024  # bytes of one external record; larger ones are dead-lettered unread


class Entity(BaseModel):
    """What the signal is about: a workload, pod, job or service in a namespace."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(..., max_length=63, pattern=DNS1123_LABEL)
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Job", "Service"]
    name: str = Field(..., max_length=253, pattern=DNS1123_SUBDOMAIN)


class ExternalSignal(BaseModel):
    """``data`` of an external signal record."""

    model_config = ConfigDict(extra="forbid")

    ingest_id: str = Field(..., min_length=1, max_length=256)
    reason: str = Field(..., min_length=1, max_length=128)
    entity: Entity
    severity: Severity = Severity.MEDIUM
    firing: bool = True  # False: the source says it is over (clears it, like a resolved alert)
    since: dt.datetime | None = None
    message: str = Field("", max_length=512)
    detail: dict[str, Any] = Field(default_factory=dict)


Owners = Callable[[Entity], tuple[ResourceRef, ...]]


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"[:300]


def signal_of(value: bytes | None, owners: Owners, now: dt.datetime,
              namespace_allowed: Callable[[str], bool] = lambda _: True) -> Signal | str:
    """One record's value as a Signal, or why it is refused (for the dead-letter topic)."""
    if value is None:
        return "empty record (a tombstone)"
    if len(value) > MAX_RECORD:
        return f"record larger than {MAX_RECORD} bytes"
    try:
        envelope = Envelope.model_validate(json.loads(value))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"not JSON: {error}"[:300]
    except ValidationError as error:
        return f"not a fleet envelope: {_first_error(error)}"
    if envelope.type != "signal":
        return f"type {envelope.type!r}: only signal records are read here"
    try:
        external = ExternalSignal.model_validate(envelope.data)
        entity = external.entity
        if not namespace_allowed(entity.namespace):
            return f"namespace {entity.namespace} is not watched by this operator"
        ref = ResourceRef(kind=entity.kind, name=entity.name, namespace=entity.namespace)
        since = external.since if external.since is None or external.since.tzinfo else external.since.replace(tzinfo=dt.UTC)
        return Signal(source=SignalSource.EXTERNAL, reason=external.reason, time=now, object=ref,
                      uid=f"external/{external.ingest_id}", owners=owners(entity), severity=external.severity,
                      firing=external.firing, since=since if since is not None and since <= now else None,
                      key=signal_key(SignalSource.EXTERNAL.value, external.ingest_id), message=external.message,
                      origin=envelope.tenant,
                      detail={"ingestId": external.ingest_id, "tenant": envelope.tenant, **external.detail})
    except ValidationError as error:
        return f"not an external signal: {_first_error(error)}"
