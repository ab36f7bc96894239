"""Signatures that bind what the operator decided to the objects it decided it for.

The operator's own writes are the only ones the executor trusts, and the API server alone
cannot say which object a write came from once it is stored. So every fact the executor
acts on carries an HMAC-SHA256 made with a key only the operator holds (a Secret in its
namespace, mounted into its pod):

- a recommended action: over the Incident's uid, the Investigation's uid, the action's
  id, type, target and parameters (``action_signature``). Copied to another Incident,
  another Investigation, another namespace, or with one parameter changed, it no longer
  verifies;
- the Investigation the operator created for an Incident, and the Incidents detection
  opened (``object_mark``): a look-alike made by someone else (same name, same labels,
  even the same owner reference) lacks the mark, so it is never adopted.

Pure functions over plain values; the key is bytes handed in by the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

MARK_ANNOTATION = "aisre.dev/mark"


def _digest(key: bytes, *parts: Any) -> str:
    message = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _target(action: Mapping[str, Any]) -> list[str]:
    target = action.get("target") or {}
    return [str(target.get("kind") or ""), str(target.get("namespace") or ""), str(target.get("name") or "")]


def action_signature(key: bytes, incident_uid: str, investigation_uid: str, action: Mapping[str, Any]) -> str:
    """The signature of one recommended action (camelCase dict, as in status)."""
    return _digest(key, "action/v1", incident_uid, investigation_uid, action.get("id"), action.get("type"),
                   _target(action), action.get("parameters") or {})


def verify_action(key: bytes, incident_uid: str, investigation_uid: str, action: Mapping[str, Any]) -> bool:
    given = action.get("signature")
    return isinstance(given, str) and hmac.compare_digest(
        given, action_signature(key, incident_uid, investigation_uid, action))


def action_id(type_: str, namespace: str, incident_uid: str, target: Mapping[str, Any],
              parameters: Mapping[str, Any] | None) -> str:
    """A recommended action's id: unique to its Incident (namespace and uid), its target
    and its parameters, so an approval of one can never count for another."""
    material = json.dumps([namespace, incident_uid, type_, [target.get("kind"), target.get("namespace"),
                                                            target.get("name")], parameters or {}],
                          sort_keys=True, separators=(",", ":"))
    return f"{type_.lower()}-{hashlib.sha256(material.encode()).hexdigest()[:16]}"


def object_mark(key: bytes, kind: str, namespace: str, name: str, *binding: str) -> str:
    """The mark the operator puts on an object it created itself (``MARK_ANNOTATION``)."""
    return _digest(key, "object/v1", kind, namespace, name, *binding)


def has_mark(key: bytes, obj: Mapping[str, Any], kind: str, *binding: str) -> bool:
    meta = obj.get("metadata") or {}
    given = (meta.get("annotations") or {}).get(MARK_ANNOTATION)
    return isinstance(given, str) and hmac.compare_digest(
        given, object_mark(key, kind, meta.get("namespace") or "", meta.get("name") or "", *binding))
