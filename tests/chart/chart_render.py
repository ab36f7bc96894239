"""Rendering the Helm chart `charts/aisre` with the pinned helm (`make tools`), parsed with
pyyaml; shared by the rendering tests and the install tests on the cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "aisre"
HELM = REPO / ".tools" / "bin" / "helm"

Obj = dict[str, Any]


def helm(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def set_args(sets: tuple[str, ...] | list[str]) -> list[str]:
    return [arg for s in sets for arg in ("--set", s)]


def render(*sets: str, release: str = "aisre", namespace: str = "aisre-system", json_sets: tuple[str, ...] | list[str] = ()
           ) -> list[Obj]:
    """The chart's objects for these `--set` (and `--set-json`) values (CRDs not included, as `helm template`)."""
    json_args = [arg for s in json_sets for arg in ("--set-json", s)]
    out = helm("template", release, str(CHART), "-n", namespace, *set_args(sets), *json_args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objects: list[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> Obj:
    found = find(objects, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects: list[Obj]) -> Obj:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(objects: list[Obj], namespace: str = "aisre-system", pod: str = "aisre-0") -> dict[str, str]:
    """The operator container's environment as the kubelet would resolve it (fieldRefs to
    the pod; a Secret reference to a placeholder)."""
    env: dict[str, str] = {}
    for entry in container(objects).get("env") or []:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            env[entry["name"]] = {"metadata.namespace": namespace, "metadata.name": pod}[path]
        else:
            env[entry["name"]] = "secret-value"
    return env


def rules_of(role: Obj) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role or ClusterRole grants."""
    return [(group, resource, verb) for rule in role.get("rules") or [] for group in rule.get("apiGroups") or []
            for resource in rule.get("resources") or [] for verb in rule.get("verbs") or []]
