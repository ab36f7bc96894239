"""The cluster a benchmark runs on: the local one (``hack/cluster-up.sh`` of the checkout,
idempotent) or any kubeconfig; the aisre CRDs (generated from the models, so no file of the
checkout is needed); and what an earlier, killed run may have left behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiextensionsV1Api
from kubernetes.client.exceptions import ApiException

from aisre.api.crd import render_crds
from aisre.bench import kwok
from aisre.bench.kube import Kube, Stream, api_error

CLUSTER_UP = Path("hack") / "cluster-up.sh"


class ClusterError(RuntimeError):
    """The cluster cannot be used; the message says what to do."""


def find_checkout(start: Path | None = None) -> Path | None:
    """The aisre checkout (the directory with hack/cluster-up.sh): $AISRE_REPO, or the
    current directory or one of its parents."""
    if os.environ.get("AISRE_REPO"):
        return Path(os.environ["AISRE_REPO"])
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / CLUSTER_UP).is_file():
            return directory
    return None


def local_cluster_dir(checkout: Path) -> Path:
    return Path(os.environ.get("AISRE_CLUSTER_DIR", checkout / ".cluster")).resolve()


def answers(kubeconfig: Path) -> bool:
    """Whether the cluster of ``kubeconfig`` answers and has nodes."""
    if not kubeconfig.is_file():
        return False
    try:
        kube = Kube(str(kubeconfig))
    except Exception:  # noqa: BLE001  (an unreadable kubeconfig: let cluster-up.sh make a new one)
        return False
    try:
        return bool(kube.core.list_node(limit=1, _request_timeout=5).items)
    except Exception:  # noqa: BLE001  (down, refusing, timing out: all mean "not up")
        return False
    finally:
        kube.close()


def bring_up_local(checkout: Path) -> Path:
    """Runs hack/cluster-up.sh unless the cluster already answers; returns the kubeconfig.

    Not when it answers: the script recreates a cluster with a node that is not Ready, and a
    node step (of this run after a crash, or of another run right now) makes one NotReady on
    purpose."""
    kubeconfig = local_cluster_dir(checkout) / "kubeconfig"
    if answers(kubeconfig):
        return kubeconfig
    result = subprocess.run(["bash", str(checkout / CLUSTER_UP)], cwd=checkout, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise ClusterError(f"hack/cluster-up.sh failed:\n{result.stderr[-3000:]}")
    for line in result.stderr.splitlines():
        if line.startswith("[cluster-up]"):
            print(line, file=sys.stderr)
    return kubeconfig


def install_crds(kube: Kube, timeout: float = 60) -> None:
    """Server-side applies the CRDs generated from the models and waits until Established."""
    names = []
    for text in render_crds().values():
        manifest = yaml.safe_load(text)
        kube.apply(manifest, namespace="")
        names.append(manifest["metadata"]["name"])
    api = ApiextensionsV1Api(kube.api)
    pending = set(names)
    stream = Stream(api.list_custom_resource_definition)
    for _, crd in stream.events(timeout=timeout):
        if any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions") or []):
            pending.discard(crd["metadata"]["name"])
        if not pending:
            stream.stop()
            return
    raise ClusterError(f"CRDs not Established within {timeout:g} s: {sorted(pending)}")


def kwok_available(kube: Kube) -> str | None:
    """None when KWOK's Stage and Logs APIs can be used at run time, else why not."""
    for plural in ("stages", "logs"):
        try:
            kube.custom.list_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, plural, limit=1)
        except ApiException as error:
            return f"KWOK {plural} API not available ({api_error(error)}); runtime and node steps need KWOK's CRDs enabled"
    return None


def run_id() -> str:
    """Names this run on the objects it creates (a label value: 63 characters at most)."""
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname()).strip("-_.") or "host"
    return f"{host[:50]}-{os.getpid()}"


def run_alive(run: str) -> bool:
    """Whether the run that wrote ``run`` still exists (runs on other hosts count as alive)."""
    host, _, pid = run.rpartition("-")
    if host != run_id().rpartition("-")[0] or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_runs(kube: Kube, log_root: Path) -> list[str]:
    """Deletes the Stages, namespaces and log files of runs on this host that no longer
    exist (a run killed with SIGKILL had no chance to clean up)."""
    def abandoned(obj: dict[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return labels.get(kwok.KEPT_LABEL) != "true" and not run_alive(labels.get(kwok.RUN_LABEL, ""))

    deleted = []
    selector = f"{kwok.MANAGED_BY_LABEL}={kwok.MANAGED_BY}"
    try:
        stages = kube.custom.list_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", label_selector=selector)["items"]
    except ApiException:
        stages = []
    for stage in stages:
        if abandoned(stage):
            try:
                kube.custom.delete_cluster_custom_object(kwok.KWOK_GROUP, kwok.KWOK_VERSION, "stages", stage["metadata"]["name"])
                deleted.append(f"Stage/{stage['metadata']['name']}")
            except ApiException:
                pass
    for ns in Kube.raw(kube.core.list_namespace, label_selector=selector)["items"]:
        if abandoned(ns) and not ns["metadata"].get("deletionTimestamp"):
            kube.core.delete_namespace(ns["metadata"]["name"])
            deleted.append(f"Namespace/{ns['metadata']['name']}")
    # Log files are written only once their namespace exists: without it, nobody reads them.
    existing = {ns["metadata"]["name"] for ns in Kube.raw(kube.core.list_namespace)["items"]}
    for directory in log_root.iterdir() if log_root.is_dir() else []:
        if directory.name not in existing or f"Namespace/{directory.name}" in deleted:
            shutil.rmtree(directory, ignore_errors=True)
    return deleted
