"""Every error aisre raises on purpose, by who must act on it.

    AisreError
     ├── NeedsUserError        the user must change something (a spec, a permission);
     │                         retrying will not help → kopf.PermanentError + a condition
     │    └── KafkaAccessDenied  the Kafka broker refused our credentials or our TLS
     ├── WaitingError          something is not ready yet; retry after ``delay`` seconds
     │                         → kopf.TemporaryError(delay=...)
     └── ExternalError         a third-party call failed; the cause is chained
"""

from __future__ import annotations


class AisreError(Exception):
    """Base of aisre's own errors. ``reason`` is a CamelCase condition reason."""

    reason = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason:
            self.reason = reason


class NeedsUserError(AisreError):
    """The user must act: a bad spec, a missing object, a missing permission."""

    reason = "NeedsUser"


class KafkaAccessDenied(NeedsUserError):
    """The Kafka broker refused the connection's credentials (SASL) or its TLS (docs/fleet.md):
    a wrong password, user, mechanism or CA. Retrying with the same settings will not help."""

    reason = "KafkaAccessDenied"


class WaitingError(AisreError):
    """Not ready yet; try again later."""

    reason = "Waiting"

    def __init__(self, message: str, *, delay: float = 10.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class ExternalError(AisreError):
    """A dependency failed (API server, Prometheus, LLM); raised ``from`` the cause."""

    reason = "ExternalError"
