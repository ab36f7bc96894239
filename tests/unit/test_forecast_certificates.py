"""Certificates' expiry read from tls.crt (never tls.key) and from cert-manager's status."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from aisre.bench.forecast import self_signed_pem
from aisre.forecast.certificates import (CertificateUnreadable, expiry_prediction, from_cert_manager, read_tls_secret)
from aisre.forecast.model import Outcome

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


certificate = self_signed_pem  # the bench's stand-in for a TLS Secret's tls.crt


def tls_secret(pem: bytes, key: str = "not read") -> dict[str, object]:
    return {"type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(pem).decode(),
                                                  "tls.key": base64.b64encode(key.encode()).decode()}}


def test_not_after_and_subject_come_from_the_certificate() -> None:
    validity = read_tls_secret(tls_secret(certificate("shop.example.com", NOW + dt.timedelta(hours=5))))
    assert validity.not_after == NOW + dt.timedelta(hours=5)
    assert validity.subject == "CN=shop.example.com"


def test_a_chain_is_valid_until_its_first_member_expires() -> None:
    pem = certificate("leaf", NOW + dt.timedelta(days=60)) + certificate("intermediate", NOW + dt.timedelta(hours=3))
    validity = read_tls_secret(tls_secret(pem))
    assert validity.subject == "CN=intermediate" and validity.not_after == NOW + dt.timedelta(hours=3)


@pytest.mark.parametrize("secret, reason", [
    ({"type": "Opaque", "data": {}}, "not a kubernetes.io/tls"),
    ({"type": "kubernetes.io/tls", "data": {"tls.key": "eA=="}}, "no tls.crt"),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": "%%%"}}, "not base64"),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(b"secret-ish bytes").decode()}}, "no PEM"),
])
def test_unreadable_secrets_say_why_without_their_data(secret: dict[str, object], reason: str) -> None:
    with pytest.raises(CertificateUnreadable) as caught:
        read_tls_secret(secret)
    assert reason in str(caught.value) and "secret-ish" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_expiry_within_the_horizon_is_predicted_exactly() -> None:
    validity = read_tls_secret(tls_secret(certificate("api", NOW + dt.timedelta(hours=4))))
    p = expiry_prediction(validity, NOW, horizon_s=12 * 3600)
    assert p.outcome == Outcome.PREDICTED and p.eta_s == 4 * 3600 and p.confidence == 1.0
    assert expiry_prediction(validity, NOW, horizon_s=3 * 3600).outcome == Outcome.BEYOND_HORIZON
    assert expiry_prediction(validity, NOW + dt.timedelta(hours=5), 12 * 3600).outcome == Outcome.AT_LIMIT


def test_cert_manager_status_is_read_when_present() -> None:
    cert = {"spec": {"dnsNames": ["a.example.com"]}, "status": {"notAfter": "2026-12-07T18:00:00Z"}}
    validity = from_cert_manager(cert)
    assert validity is not None and validity.not_after == NOW + dt.timedelta(hours=6)
    assert validity.subject == "CN=a.example.com"
    assert from_cert_manager({"spec": {}, "status": {}}) is None
