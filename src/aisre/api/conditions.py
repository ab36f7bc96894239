"""Pure helpers for ``status.conditions`` (metav1.Condition semantics): the transition
time changes only when the status does, and the short ``state`` shown by printer
columns is always derived from the conditions, never stored on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from aisre.api.meta import Condition, ConditionStatus

# Condition types, shared by every kind.
ACCEPTED = "Accepted"

# Reasons (CamelCase, documented constants so clients can match on them).
REASON_SPEC_ACCEPTED = "SpecAccepted"
REASON_INVALID_SPEC = "InvalidSpec"


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    *,
    type_: str,
    status: ConditionStatus | str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return the conditions with one of them set, as the API server stores them.

    The transition time is kept when the status does not change, so a condition that
    is merely re-confirmed does not look like it just flipped.
    """
    status_value = ConditionStatus(status).value

    def build(transition_time: dt.datetime | str) -> dict[str, Any]:
        return Condition(
            type=type_,
            status=ConditionStatus(status_value),
            reason=reason,
            message=message,
            last_transition_time=transition_time,
            observed_generation=observed_generation,
        ).to_kube()

    result: list[dict[str, Any]] = []
    replaced = False
    for existing in conditions or ():
        if existing.get("type") != type_:
            result.append(dict(existing))
            continue
        replaced = True
        keep_time = existing.get("status") == status_value and existing.get("lastTransitionTime")
        result.append(build(keep_time or now))
    if not replaced:
        result.append(build(now))
    return result


def find_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return bool(condition and condition.get("status") == ConditionStatus.TRUE.value)
