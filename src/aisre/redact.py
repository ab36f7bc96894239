"""Redaction: what must never leave the cluster, or reach people who may read an
Incident but not the Secrets behind it, is replaced.

Applied to every string that goes into an LLM request (evidence summaries and data,
resource names, the question), and to the evidence the operator writes to status, Events
and reports (summaries, structured data, log samples, journal details), recursively
through dicts and lists. Under a key that names a
secret (``password``, ``token``, ``apiKey`` …), or in an ``{name, value}`` pair whose
name does, the whole value goes. Each rule replaces its match with ``[REDACTED:<rule>]``,
so a reader of the prompt sees that something was there and what sort of thing.

Redaction is a second line: agents never fetch Secret values in the first place
(``ClusterReader`` refuses to GET a Secret and lists them metadata-only).
"""

from __future__ import annotations

import re
from typing import Any

SECRET_WORDS = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|" \
               r"account[_-]?key|shared[_-]?access[_-]?key|client[_-]?secret|credentials?|auth[_-]?token|session[_-]?id|cookie)"
SECRET_NAME = re.compile(rf"(?i){SECRET_WORDS}")

# Order matters: the specific shapes first, the generic ones last.
RULES: list[tuple[str, re.Pattern[str], str]] = [
    ("private-key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)"), ""),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), ""),
    ("authorization", re.compile(r"(?i)\b(authorization|proxy-authorization)(\s*[:=]\s*)[^\r\n,;]+"), r"\1\2"),
    ("bearer", re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2"),
    ("url-credentials", re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s:/@]+:[^\s@/]+@"), r"\1"),
    ("aws-key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), ""),
    ("gcp-key", re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), ""),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), ""),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ""),
    ("api-key", re.compile(r"\b(?:sk|rk|pk)[-_](?:ant-|live_|test_|proj-)?[A-Za-z0-9_-]{20,}"), ""),
    ("google-oauth", re.compile(r"\bya29\.[A-Za-z0-9_-]{20,}"), ""),
    ("key-value", re.compile(rf"(?i)([\w.-]*{SECRET_WORDS}[\w.-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]+)"), r"\1"),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), ""),
    # Long opaque strings that mix letters and digits (keys, tokens nobody labelled).
    ("opaque", re.compile(r"\b(?=[A-Za-z0-9+/_=]*\d)(?=[A-Za-z0-9+/_=]*[A-Za-z])[A-Za-z0-9+/_=]{40,}"), ""),
]


def redact_text(text: str) -> str:
    """The text with every secret-shaped part replaced by ``[REDACTED:<rule>]``."""
    for name, pattern, keep in RULES:
        marker = f"[REDACTED:{name}]"
        text = pattern.sub((keep + marker) if keep else marker, text)
    return text


def redact(value: Any) -> Any:
    """Redact a JSON-like value (strings, dicts, lists; other scalars pass through)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        secret_pair = isinstance(value.get("name"), str) and SECRET_NAME.search(value["name"]) is not None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str | int | float) and not isinstance(item, bool) and (
                SECRET_NAME.search(str(key)) or (secret_pair and key == "value")
            ):
                out[redact_text(str(key))] = "[REDACTED:secret-field]"
            else:
                out[redact_text(str(key))] = redact(item)
        return out
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
