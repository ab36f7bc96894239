"""Scenario files: parsing, refusing malformed ones per file, $NAMESPACE, tags."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aisre.bench.loader import LoadedScenario, LoadError, filter_by_tags, load_dir, load_file
from aisre.bench.scenario import RuntimeState, Scenario, parse_duration, substitute
from aisre.bench.scenario_run import manifests, namespace_name

REPO = Path(__file__).resolve().parents[2]

GOOD = """
apiVersion: aisre.dev/scenario-v1
name: bad-image-tag
description: A rollout switches the image to a tag that does not exist.
tags: [events, change]
setup: |
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, labels: {app: web}}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec:
        containers: [{name: web, image: "registry.local/web:v1", env: [{name: NS, value: "$NAMESPACE"}]}]
fault:
  - patch:
      target: {kind: Deployment, name: web}
      patch: {spec: {template: {spec: {containers: [{name: web, image: "registry.local/web:v2-typo"}]}}}}
  - runtime:
      selector: {app: web, tier: 1}
      newPodsOnly: true
      container: web
      state: ImagePullBackOff
      reason: ""
      message: 'Back-off pulling image "registry.local/web:v2-typo"'
      events:
        - {type: Warning, reason: Failed, message: "Error: ImagePullBackOff in $NAMESPACE"}
      logs: ["2026-01-01T00:00:00Z ERROR could not connect to db.$NAMESPACE:5432"]
  - node:
      podSelector: {app: web}
      conditions: [{type: Ready, status: "False", reason: KubeletNotReady, message: down}]
  - delete: {kind: Service, name: db}
  - metrics:
      - series: container_memory_working_set_bytes
        selector: {app: web}
        shape: {kind: ramp, start: 1.0e8, end: 5.2e8, at: -20m}
  - wait: 1m30s
expect:
  incident: true
  rootCause:
    category: BadImage
    resource: {kind: Deployment, name: web}
  alsoAcceptable:
    - {category: BadImage, resource: {kind: ReplicaSet, name: web-2}}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_full_scenario_parses_into_typed_steps(tmp_path: Path) -> None:
    item = load_file(_write(tmp_path, "s.yaml", GOOD))
    assert isinstance(item, LoadedScenario), item
    s = item.scenario
    assert s.name == "bad-image-tag" and s.tags == ["events", "change"]
    assert [step.kind for step in s.fault] == ["patch", "runtime", "node", "delete", "metrics", "wait"]
    runtime = s.fault[1].runtime
    assert runtime is not None
    assert runtime.state == RuntimeState.IMAGE_PULL_BACK_OFF
    assert runtime.new_pods_only and runtime.container == "web"
    assert runtime.reason is None  # "" means: the kubelet's own reason
    assert runtime.selector == {"app": "web", "tier": "1"}  # YAML ints become label strings
    assert s.fault[2].node is not None and s.fault[2].node.pod_selector == {"app": "web"}
    assert s.fault[5].wait == 90.0
    assert s.expect.root_cause is not None and s.expect.root_cause.category.value == "BadImage"
    assert s.runtime_steps() == [(1, runtime)]


def test_namespace_is_substituted_in_every_string(tmp_path: Path) -> None:
    item = load_file(_write(tmp_path, "s.yaml", GOOD))
    assert isinstance(item, LoadedScenario)
    s = item.for_namespace("bench-x-1")
    assert "$NAMESPACE" not in s.model_dump_json()
    assert manifests(s.setup)[0]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "bench-x-1"
    runtime = s.fault[1].runtime
    assert runtime is not None
    assert runtime.events[0].message == "Error: ImagePullBackOff in bench-x-1"
    assert runtime.logs == ["2026-01-01T00:00:00Z ERROR could not connect to db.bench-x-1:5432"]
    # keys too, and nothing else is touched
    assert substitute({"$NAMESPACE": ["a $NAMESPACE b", 3, None]}, "n") == {"n": ["a n b", 3, None]}


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(apiVersion="aisre.dev/scenario-v2"), "apiVersion"),
        (lambda d: d.update(name="Bad_Name"), "name"),
        (lambda d: d["fault"][1]["runtime"].update(state="Sleeping"), "state"),
        (lambda d: d["fault"][1]["runtime"].update(newPodOnly=True), "newPodOnly"),  # typo: refused, not ignored
        (lambda d: d["fault"].append({"wait": "5s", "delete": {"kind": "Service", "name": "db"}}), "exactly one key"),
        (lambda d: d["fault"].append({"wait": "soon"}), "duration"),
        (lambda d: d["fault"][2]["node"].update(name="kwok-node-0"), "exactly one of podSelector"),
        (lambda d: d["expect"]["rootCause"].update(category="Gremlins"), "category"),
        (lambda d: d["expect"].pop("rootCause"), "rootCause"),
        (lambda d: d["expect"]["rootCause"]["resource"].update(podSelector={"app": "web"}), "exactly one of name or podSelector"),
        (lambda d: d["fault"][0]["patch"].update(type="json"), "list of operations"),
    ],
)
def test_a_malformed_file_is_an_error_result_not_a_crash(tmp_path: Path, mutate, fragment: str) -> None:
    data = yaml.safe_load(GOOD)
    mutate(data)
    item = load_file(_write(tmp_path, "bad.yaml", yaml.safe_dump(data)))
    assert isinstance(item, LoadError)
    assert item.name == data.get("name", "bad")
    assert fragment in item.error, item.error


def test_unreadable_yaml_and_non_mappings_are_errors(tmp_path: Path) -> None:
    broken = load_file(_write(tmp_path, "broken.yaml", "name: [unclosed"))
    assert isinstance(broken, LoadError) and broken.name == "broken" and "invalid scenario file" in broken.error
    listed = load_file(_write(tmp_path, "list.yaml", "- a\n- b\n"))
    assert isinstance(listed, LoadError) and "mapping" in listed.error


def test_no_fault_scenarios_need_no_root_cause(tmp_path: Path) -> None:
    data = yaml.safe_load(GOOD)
    data["expect"] = {"incident": False}
    item = load_file(_write(tmp_path, "ok.yaml", yaml.safe_dump(data)))
    assert isinstance(item, LoadedScenario)
    data["expect"] = {"incident": True, "rootCause": {"category": "NoFault", "resource": {"kind": "Deployment", "name": "web"}}}
    assert isinstance(load_file(_write(tmp_path, "bad.yaml", yaml.safe_dump(data))), LoadError)


def test_directory_loading_is_recursive_sorted_and_flags_duplicates(tmp_path: Path) -> None:
    _write(tmp_path, "b/one.yaml", GOOD)
    _write(tmp_path, "a/two.yml", GOOD.replace("name: bad-image-tag", "name: other"))
    _write(tmp_path, "c/again.yaml", GOOD)
    _write(tmp_path, "notes.txt", "not a scenario")
    items = load_dir(tmp_path)
    assert [i.path.name for i in items] == ["two.yml", "one.yaml", "again.yaml"]
    assert isinstance(items[0], LoadedScenario) and isinstance(items[1], LoadedScenario)
    assert isinstance(items[2], LoadError) and "duplicate" in items[2].error
    with pytest.raises(FileNotFoundError):
        load_dir(tmp_path / "missing")


def test_tag_filter_keeps_scenarios_with_any_given_tag(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", GOOD)  # events, change
    _write(tmp_path, "b.yaml", GOOD.replace("name: bad-image-tag", "name: b").replace("[events, change]", "[node]"))
    _write(tmp_path, "c.yaml", GOOD.replace("name: bad-image-tag", "name: c").replace("state: ImagePullBackOff", "state: Nope")
           .replace("[events, change]", "[node, broken]"))
    items = load_dir(tmp_path)
    assert [i.name for i in filter_by_tags(items, [])] == ["bad-image-tag", "b", "c"]
    assert [i.name for i in filter_by_tags(items, ["node"])] == ["b", "c"]  # the broken one too: its tags could be read
    assert [i.name for i in filter_by_tags(items, ["change", "broken"])] == ["bad-image-tag", "c"]
    assert filter_by_tags(items, ["absent"]) == []


@pytest.mark.parametrize(
    "text, seconds",
    [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("-30m", -1800.0), (3, 3.0), ("1.5s", 1.5)],
)
def test_durations(text, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 s", "s5", "5x", True, None])
def test_bad_durations(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_namespace_names_are_dns_labels_of_at_most_63() -> None:
    assert namespace_name("bad-image-tag", "ab12c") == "bench-bad-image-tag-ab12c"
    long = namespace_name("a" * 55 + "-" + "b" * 7, "ab12c")
    assert len(long) <= 63 and "--" not in long and long.endswith("-ab12c")
    assert namespace_name("x") != namespace_name("x")  # random suffix


def test_multi_document_setup_with_lists() -> None:
    text = "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n---\n" \
           "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"
    assert [m["metadata"]["name"] for m in manifests(text)] == ["a", "b"]


@pytest.mark.parametrize("directory", ["tests/scenarios", "scenarios", "scenarios-real"])
def test_the_repositorys_scenarios_all_load(directory: str) -> None:
    path = REPO / directory
    if not path.is_dir():
        pytest.skip(f"no {directory}/")
    items = load_dir(path)
    errors = [f"{i.path.name}: {i.error}" for i in items if isinstance(i, LoadError)]
    assert not errors, "\n".join(errors)
    for item in items:
        assert isinstance(item, LoadedScenario)
        assert isinstance(item.for_namespace("bench-ns-12345"), Scenario)


def test_setup_and_apply_must_be_yaml_objects(tmp_path: Path) -> None:
    data = yaml.safe_load(GOOD)
    data["setup"] = "apiVersion: v1\nkind: [unclosed\n"
    item = load_file(_write(tmp_path, "a.yaml", yaml.safe_dump(data)))
    assert isinstance(item, LoadError) and "setup" in item.error and "not valid YAML" in item.error
    data = yaml.safe_load(GOOD)
    data["fault"].insert(0, {"apply": "just a string"})
    item = load_file(_write(tmp_path, "b.yaml", yaml.safe_dump(data)))
    assert isinstance(item, LoadError) and "no kind" in item.error
