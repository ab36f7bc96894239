"""When a certificate stops being valid, read from the certificate itself.

A ``kubernetes.io/tls`` Secret's ``tls.crt`` (PEM, base64 in the Secret) is parsed with
``cryptography``; only the validity end and the subject leave this module. The private key
(``tls.key``) is never read, and nothing of the Secret's data is logged or stored. A chain
is valid until its first member expires, so the earliest ``notAfter`` of the PEM bundle
counts (an expired intermediate breaks the handshake as surely as the leaf).

cert-manager's Certificates report the same in ``status.notAfter``; ``from_cert_manager``
reads that, so a cluster with cert-manager is covered without reading Secrets at all.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from aisre.forecast.model import Outcome, Prediction

TLS_SECRET_TYPE = "kubernetes.io/tls"


class CertificateUnreadable(ValueError):
    """``tls.crt`` is missing or holds no certificate we can parse (the reason says which)."""


@dataclass(frozen=True)
class CertificateValidity:
    not_after: dt.datetime
    subject: str  # RFC 4514, e.g. CN=shop.example.com


def read_pem(pem: bytes) -> CertificateValidity:
    """The earliest expiry of the PEM bundle, and that certificate's subject."""
    from cryptography import x509  # imported here: only the forecast loop needs it

    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise CertificateUnreadable(f"no PEM certificate: {error}") from None  # no chaining: the data stays out
    first = min(chain, key=lambda c: c.not_valid_after_utc)
    return CertificateValidity(first.not_valid_after_utc, first.subject.rfc4514_string()[:256])


def read_tls_secret(secret: dict[str, object]) -> CertificateValidity:
    """The validity of a ``kubernetes.io/tls`` Secret's ``tls.crt``; ``tls.key`` is never touched."""
    if secret.get("type") != TLS_SECRET_TYPE:
        raise CertificateUnreadable(f"not a {TLS_SECRET_TYPE} Secret")
    data = secret.get("data") or {}
    encoded = data.get("tls.crt") if isinstance(data, dict) else None
    if not encoded:
        raise CertificateUnreadable("no tls.crt")
    try:
        pem = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateUnreadable("tls.crt is not base64") from None
    return read_pem(pem)


def from_cert_manager(certificate: dict[str, object]) -> CertificateValidity | None:
    """cert-manager's own record of the issued certificate (``status.notAfter``), if any."""
    status = certificate.get("status") or {}
    spec = certificate.get("spec") or {}
    raw = status.get("notAfter") if isinstance(status, dict) else None
    if not raw:
        return None
    when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    name = (spec.get("commonName") or ",".join(spec.get("dnsNames") or [])) if isinstance(spec, dict) else ""
    return CertificateValidity(when, f"CN={name}"[:256] if name else "")


def expiry_prediction(validity: CertificateValidity, now: dt.datetime, horizon_s: float) -> Prediction:
    """A certificate's end is no estimate: the time is exact, the confidence is 1."""
    left = (validity.not_after - now).total_seconds()
    if left <= 0:
        return Prediction(Outcome.AT_LIMIT, 0.0, f"expired at {validity.not_after.isoformat()}", 1.0, 0.0, 0.0, 0.0)
    outcome = Outcome.PREDICTED if left <= horizon_s else Outcome.BEYOND_HORIZON
    return Prediction(outcome, 0.0, f"{validity.subject or 'the certificate'} expires at {validity.not_after.isoformat()}"
                      f" (in {left / 3600:.1f} h)", 1.0, left, left, left)
