"""No rule knows a scenario: no scenario's name, and no name of an object a scenario
creates, appears as a string in the code that gathers evidence, ranks it or detects
faults. Names that are also ordinary words (``redis``, ``web``) are left out: only the
hyphenated names a team gives its objects (``claims-worker``) are specific enough to be
a rule shaped like a case."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULE_CODE = [REPO / "src" / "aisre" / "ranking", REPO / "agents", REPO / "operator" / "detection"]
SCENARIO_DIRS = [REPO / "scenarios", REPO / "tests" / "scenarios-metrics-heldout"]


def scenario_names() -> set[str]:
    names: set[str] = set()
    for directory in SCENARIO_DIRS:
        for path in directory.glob("*.yaml"):
            scenario = yaml.safe_load(path.read_text())
            names.add(scenario["name"])
            texts = [scenario.get("setup") or ""] + [s["apply"] for s in scenario.get("fault") or [] if "apply" in s]
            for text in texts:
                for doc in yaml.safe_load_all(text):
                    name = ((doc or {}).get("metadata") or {}).get("name")
                    if name:
                        names.add(name)
    return {n for n in names if "-" in n}


def test_no_scenario_or_object_name_is_in_a_rule() -> None:
    names = scenario_names()
    assert len(names) > 200  # the scenarios were read
    found = []
    for root in RULE_CODE:
        for path in root.rglob("*.py"):
            for literal in re.findall(r"""["']([^"'\n]{3,80})["']""", path.read_text()):
                hits = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", literal)]
                if hits:
                    found.append((str(path.relative_to(REPO)), literal, hits))
    assert not found, found
