"""The ranking must generalise: renaming every object of a scenario (and every mention of
its name in labels, env, config and logs) changes nothing but the names in the answer."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import yaml

from aisre.bench.runner import Options, run

REPO = Path(__file__).resolve().parents[2]
# Different categories, each with a dependency, a config object or RBAC objects to rename.
CHOSEN = [
    "checkout-redis-cache-aof-corrupt",
    "payments-service-selector-typo",
    "cart-redis-password-rotated",
    "queue-worker-rolebinding-wrong-subject",
    # Mechanisms of the scenarios from public failure material: a loopback address the
    # dependency advertises, a worker left running the web program, missing config a log names.
    "clickstream-kafka-advertised-localhost",
    "claims-worker-runs-puma-default-cmd",
    "payments-gateway-optional-secret-key-renamed",
    # A NetworkPolicy judged on the pod's port behind a Service; a peer that rejects requests
    # (HTTP 4xx for URLs with fully qualified Service names) after its config changed.
    "ratings-netpol-port-is-service-port",
    "orders-api-django-allowed-hosts-hardened",
]


def _names(scenario: dict) -> set[str]:
    names: set[str] = set()
    documents = [scenario.get("setup") or ""] + [s["apply"] for s in scenario.get("fault") or [] if "apply" in s]
    for text in documents:
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("metadata", {}).get("name"):
                names.add(doc["metadata"]["name"])
    for step in scenario.get("fault") or []:
        for key in ("patch", "delete"):
            if key in step:
                target = step[key].get("target", step[key])
                names.add(target["name"])
    expect = scenario.get("expect") or {}
    for cause in [expect.get("rootCause") or {}] + list(expect.get("alsoAcceptable") or []):
        if (cause.get("resource") or {}).get("name"):
            names.add(cause["resource"]["name"])
    return names


def rename(text: str) -> tuple[str, dict[str, str]]:
    scenario = yaml.safe_load(text)
    mapping = {n: "r" + hashlib.sha1(n.encode()).hexdigest()[:6] + "-" + "".join(reversed(n))[:20].strip("-")
               for n in _names(scenario)}
    mapping[scenario["name"]] = scenario["name"][:40] + "-renamed"
    for old in sorted(mapping, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9-]){re.escape(old)}(?![A-Za-z0-9-])", mapping[old], text)
    return text, mapping


def test_rename_keeps_every_scenario_valid_yaml() -> None:
    for name in CHOSEN:
        renamed, mapping = rename((REPO / "scenarios" / f"{name}.yaml").read_text())
        data = yaml.safe_load(renamed)
        assert data["name"] == mapping[name]
        assert all(old not in renamed.split() for old in mapping if len(old) > 3)


def test_renaming_objects_does_not_change_the_answer(kubeconfig: Path, crds, tmp_path: Path) -> None:
    original, renamed = tmp_path / "original", tmp_path / "renamed"
    original.mkdir()
    renamed.mkdir()
    mappings = {}
    for name in CHOSEN:
        text = (REPO / "scenarios" / f"{name}.yaml").read_text()
        (original / f"{name}.yaml").write_text(text)
        new_text, mapping = rename(text)
        mappings[name] = mapping
        (renamed / f"{mapping[name]}.yaml").write_text(new_text)

    reports = {}
    for label, directory in (("original", original), ("renamed", renamed)):
        options = Options(scenarios=directory, json_out=tmp_path / f"{label}.json", kubeconfig=kubeconfig,
                          mode="investigate", timeout=30)
        assert run(options, out=io.StringIO(), err=io.StringIO()) == 0
        reports[label] = {r["name"]: r for r in json.loads((tmp_path / f"{label}.json").read_text())["results"]}

    for name in CHOSEN:
        mapping = mappings[name]
        before, after = reports["original"][name], reports["renamed"][mapping[name]]
        assert before["error"] is None and after["error"] is None, (before["error"], after["error"])
        assert before["top1"] == after["top1"] and before["top3"] == after["top3"], name

        def shape(result: dict) -> list[tuple[str, str, float]]:
            out = []
            for h in result["ranked"][:3]:
                kind, _, obj = (h.get("resource") or "").partition("/")
                out.append((h["category"], kind, h["confidence"]))
            return out

        assert shape(before) == shape(after), name
        top_before, top_after = before["ranked"][0].get("resource") or "", after["ranked"][0].get("resource") or ""
        kind, _, obj = top_before.partition("/")
        assert top_after == (f"{kind}/{mapping.get(obj, obj)}" if obj else ""), (top_before, top_after)
