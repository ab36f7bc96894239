"""Redaction: every secret shape is replaced, ordinary evidence is kept readable."""

from __future__ import annotations

import json

import pytest
from evidence import SECRET_LINES, SECRETS, with_secrets

from aisre.llm.prompts import evidence_block
from aisre.llm.redact import redact, redact_text


@pytest.mark.parametrize("line", SECRET_LINES)
def test_each_secret_shape_is_redacted(line: str) -> None:
    out = redact_text(line)
    assert "[REDACTED:" in out
    for value in SECRETS.values():
        assert value not in out


def test_ordinary_text_is_kept() -> None:
    line = "Back-off restarting failed container checkout in pod checkout-7d9-abc (exit code 1) at 10:02:03"
    assert redact_text(line) == line
    assert redact_text("image registry.local/checkout:1.2 not found") == "image registry.local/checkout:1.2 not found"


def test_secret_fields_and_name_value_pairs_lose_their_values() -> None:
    out = redact({"env": [{"name": "DB_PASSWORD", "value": "plain"}, {"name": "LOG_LEVEL", "value": "debug"}],
                  "apiKey": "abc", "nested": {"client_secret": 42}})
    assert out["env"][0]["value"] == "[REDACTED:secret-field]"
    assert out["env"][1]["value"] == "debug"
    assert out["apiKey"] == out["nested"]["client_secret"] == "[REDACTED:secret-field]"


def test_the_evidence_block_carries_no_secret_even_with_full_detail() -> None:
    text = evidence_block(with_secrets(), detail=True)
    for value in SECRETS.values():
        assert value not in text and json.dumps(value)[1:-1] not in text
