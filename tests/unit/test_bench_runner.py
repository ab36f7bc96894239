"""`aisre bench` without a cluster: the command line and detect mode (not built yet)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from aisre.bench.runner import DETECT_UNSUPPORTED, Options, run
from aisre.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_the_bench_command_line() -> None:
    args = build_parser().parse_args(
        ["bench", "--scenarios", "s", "--json", "o.json", "--tag", "a", "--tag", "b", "--timeout", "5",
         "--external-operator", "--keep-namespaces", "--kubeconfig", "k"]
    )
    assert args.scenarios == Path("s") and args.json == Path("o.json") and args.tag == ["a", "b"]
    assert args.timeout == 5.0 and args.external_operator and args.keep_namespaces and args.kubeconfig == Path("k")
    assert args.mode == "investigate"
    defaults = build_parser().parse_args(["bench", "--scenarios", "s", "--json", "o.json"])
    assert defaults.timeout == 60.0 and defaults.tag is None and not defaults.external_operator


def test_detect_mode_reports_every_scenario_as_unsupported(tmp_path: Path) -> None:
    scenarios = tmp_path / "s"
    scenarios.mkdir()
    for name in ("bad-image-rollout.yaml", "db-node-not-ready.yaml"):
        (scenarios / name).write_text((REPO / "tests" / "scenarios" / name).read_text())
    (scenarios / "broken.yaml").write_text("name: broken\n")
    out, err = io.StringIO(), io.StringIO()
    # A kubeconfig that does not exist: detect mode must not touch any cluster.
    options = Options(scenarios=scenarios, json_out=tmp_path / "r.json", mode="detect", kubeconfig=tmp_path / "none")
    assert run(options, out=out, err=err) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mode"] == "detect" and report["scenarios"] == 3 and report["top1"] == 0.0 and report["errors"] == 3
    errors = {r["name"]: r["error"] for r in report["results"]}
    assert errors["bad-image-rollout"] == errors["db-node-not-ready"] == DETECT_UNSUPPORTED
    assert errors["broken"].startswith("invalid scenario")
    assert "unsupported: detect mode" in out.getvalue()
