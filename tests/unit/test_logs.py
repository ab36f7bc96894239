"""Kopf's per-object log lines keep the object they are about in our JSON lines."""

from __future__ import annotations

import json
import logging

import pytest

from aisre.operator.logs import configure_logging


def test_kopf_object_lines_name_their_object(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        logging.getLogger("kopf.objects").warning("Handler failed temporarily", extra={
            "k8s_ref": {"apiVersion": "aisre.dev/v1alpha1", "kind": "Incident", "namespace": "shop", "name": "checkout-1"}})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers[:] = []
    assert line["event"] == "Handler failed temporarily" and line["level"] == "warning"
    assert line["k8s_ref"]["name"] == "checkout-1" and line["k8s_ref"]["namespace"] == "shop"
