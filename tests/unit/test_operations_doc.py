"""docs/operations.md lists exactly the Prometheus metrics the code defines — names, types
and labels — and every ``aisre_*`` name it mentions elsewhere (the alert rules, the prose)
is one of them, so the doc cannot drift from ``operator/metrics.py``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
DASHBOARD = REPO / "charts" / "aisre" / "dashboards" / "aisre.json"
SOURCES = ["operator", "src/aisre", "remediation", "agents"]
TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary",
         "Info": "info", "Enum": "enum"}
# What the exposition adds to a family's name (a counter's _total is part of our names).
SUFFIXES = {"counter": ("_created",), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": (), "info": ("_info",), "enum": ()}
NAME = re.compile(r"\baisre_[a-z0-9_]+")
ROW = re.compile(r"^\| `(aisre_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|", re.M)

Metric = tuple[str, tuple[str, ...]]  # (type, labels)


def _strings(node: ast.expr | None) -> tuple[str, ...]:
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return ()


def _metrics_in(path: Path) -> dict[str, Metric]:
    """Counter/Gauge/Histogram/... constructions from prometheus_client in one module."""
    tree = ast.parse(path.read_text(), str(path))
    local: dict[str, str] = {}  # local name -> prometheus_client class
    modules: set[str] = set()  # names prometheus_client itself is imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
            local.update({a.asname or a.name: a.name for a in node.names if a.name in TYPES})
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "prometheus_client")
    found: dict[str, Metric] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in local:
            cls = local[func.id]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules \
                and func.attr in TYPES:
            cls = func.attr
        else:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        name = node.args[0] if node.args else keywords.get("name")
        assert isinstance(name, ast.Constant) and isinstance(name.value, str), \
            f"{path}:{node.lineno}: a metric whose name is not a literal cannot be checked against the doc"
        labels = node.args[2] if len(node.args) > 2 else keywords.get("labelnames")
        found[name.value] = (TYPES[cls], _strings(labels))
    return found


def code_metrics() -> dict[str, Metric]:
    found: dict[str, Metric] = {}
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            for name, metric in _metrics_in(path).items():
                assert name not in found, f"{name} is defined twice"
                found[name] = metric
    return found


def doc_table() -> dict[str, Metric]:
    section = DOC.read_text().split("### The aisre metrics", 1)[1].split("\n#", 1)[0]
    rows = {}
    for name, type_, labels in ROW.findall(section):
        assert name not in rows, f"{name} is listed twice in docs/operations.md"
        rows[name] = (type_, tuple(re.findall(r"`(\w+)`", labels)))
    return rows


def base_name(name: str, metrics: dict[str, Metric]) -> str:
    """The defined metric a series name belongs to (``_bucket`` etc. stripped)."""
    if name in metrics:
        return name
    for defined, (type_, _) in metrics.items():
        if any(name == defined + suffix for suffix in SUFFIXES[type_]):
            return defined
    return name


def test_the_code_defines_the_operators_metrics() -> None:
    metrics = code_metrics()
    assert "aisre_leader" in metrics and metrics["aisre_remediations_total"] == ("counter", ("action", "decision", "result"))
    assert all(name.startswith("aisre_") for name in metrics), "every metric of ours is named aisre_*"


def test_the_scan_sees_what_the_running_operator_registers() -> None:
    import aisre.operator.main  # noqa: F401  (imports every module that defines or uses a metric)
    import aisre.remediation.executor  # noqa: F401

    registered = {}
    for family in REGISTRY.collect():
        if family.name.startswith("aisre_"):
            name = family.name + "_total" if family.type == "counter" else family.name
            registered[name] = family.type
    assert registered == {name: type_ for name, (type_, _) in code_metrics().items()}


def test_the_doc_lists_every_metric_with_its_type_and_labels() -> None:
    documented, defined = doc_table(), code_metrics()
    assert sorted(set(defined) - set(documented)) == [], "defined in the code, missing from docs/operations.md"
    assert sorted(set(documented) - set(defined)) == [], "listed in docs/operations.md, not defined in the code"
    for name, metric in defined.items():
        assert documented[name] == metric, f"{name}: the doc says {documented[name]}, the code {metric}"


def test_every_aisre_name_the_doc_mentions_is_a_metric() -> None:
    defined = code_metrics()
    unknown = sorted({n for n in NAME.findall(DOC.read_text()) if base_name(n, defined) not in defined})
    assert unknown == [], f"docs/operations.md mentions metrics the code does not define: {unknown}"


def test_the_alert_rules_are_a_prometheus_rule_of_known_metrics() -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), re.S | re.M)
    rules = [yaml.safe_load(b) for b in blocks if "kind: PrometheusRule" in b]
    assert len(rules) == 1 and rules[0]["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = [r for g in rules[0]["spec"]["groups"] for r in g["rules"]]
    assert alerts and all(set(r) <= {"alert", "expr", "for", "labels", "annotations"} and r["expr"] for r in alerts)
    used = {base_name(n, code_metrics()) for r in alerts for n in NAME.findall(r["expr"])}
    assert {"aisre_leader", "aisre_investigations_total", "aisre_remediations_total", "aisre_llm_cost_usd_total"} <= used


def test_the_dashboard_queries_only_defined_metrics() -> None:
    defined = code_metrics()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queried = {n for p in panels for t in p.get("targets", []) for n in NAME.findall(t.get("expr", ""))}
    assert queried and sorted(n for n in queried if base_name(n, defined) not in defined) == []
