"""Fixtures for tests on the real local control plane.

The session brings the local cluster up with hack/cluster-up.sh (idempotent: a cluster
that is already up is reused), or uses the one named by AISRE_TEST_KUBECONFIG, and
installs the CRDs. The cluster is left running for the next session; `make cluster-down`
removes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

# The in-process operator lives with the bench runner, which runs it the same way.
from aisre.operator.graph_store import GraphSettings
from aisre.bench.operator_thread import OperatorThread, free_port

# Test modules import conftest_helpers from this folder (tests run in importlib mode);
# they import from it, never from "conftest" (tests/chart has a conftest module too).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_helpers import KUBECTL, OWN_PREFIX, REPO, Kubectl, temporary_namespace  # noqa: E402,F401  (after the path)

CLUSTER_DIR = Path(os.environ.get("AISRE_CLUSTER_DIR", REPO / ".cluster"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: needs the real node aisre-real-0 (skipped, with the reason, where it cannot start)")
# kubectl writes a discovery cache even with --kubeconfig; keep it out of ~/.kube.
os.environ.setdefault("KUBECACHEDIR", str(CLUSTER_DIR / "kube-cache"))


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    named = os.environ.get("AISRE_TEST_KUBECONFIG")
    if named:
        return Path(named)
    subprocess.run(["bash", str(REPO / "hack" / "cluster-up.sh")], check=True, timeout=900)
    return CLUSTER_DIR / "kubeconfig"


@pytest.fixture(scope="session")
def user_kubeconfig(kubeconfig: Path) -> Path:
    path = Path(os.environ.get("AISRE_TEST_USER_KUBECONFIG", kubeconfig.parent / "kubeconfig-user"))
    if not path.exists():
        pytest.skip(f"no non-admin kubeconfig at {path}")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    return Kubectl(kubeconfig)


def apply_crds(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    apply_crds(kubectl)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def namespace(kubectl: Kubectl, crds: None) -> Iterator[str]:
    with temporary_namespace(kubectl, "aisre-test-") as name:
        yield name


# Tests that run an operator (or the remediation engine) of their own, tests/llm, and
# `aisre bench` runs use these; the session operator leaves them alone.
OWN_OPERATOR_NAMESPACES = f"!{OWN_PREFIX}*,!aisre-llm-*,!bench-*"


@pytest.fixture
def own_namespace(kubectl: Kubectl, crds: None) -> Iterator[str]:
    """A namespace the session operator leaves alone, so two operators never handle the same objects."""
    with temporary_namespace(kubectl, OWN_PREFIX) as name:
        yield name


@pytest.fixture(scope="session")
def prometheus() -> str:
    """The loopback Prometheus of hack/prometheus.sh (Debian's package; started if needed),
    or the one named by AISRE_TEST_PROMETHEUS_URL."""
    named = os.environ.get("AISRE_TEST_PROMETHEUS_URL")
    if named:
        return named
    done = subprocess.run(["bash", str(REPO / "hack" / "prometheus.sh"), "start"], check=True, timeout=300,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def neo4j_settings() -> Iterator[GraphSettings]:
    """The loopback Neo4j of hack/neo4j.sh (Neo4j's test harness from Maven Central; started
    if needed, stopped after the session if this session started it), or the one named by
    AISRE_TEST_NEO4J_URI (with AISRE_TEST_NEO4J_PASSWORD)."""
    named = os.environ.get("AISRE_TEST_NEO4J_URI")
    if named:
        yield GraphSettings(uri=named, user="neo4j", password=os.environ.get("AISRE_TEST_NEO4J_PASSWORD") or None)
        return
    script = ["bash", str(REPO / "hack" / "neo4j.sh")]
    running = subprocess.run([*script, "status"], capture_output=True, text=True).returncode == 0
    done = subprocess.run([*script, "start"], check=True, timeout=900, capture_output=True, text=True)
    yield GraphSettings(uri=done.stdout.strip().splitlines()[-1], user="neo4j", password="password")
    if not running:
        subprocess.run([*script, "stop"], timeout=120, capture_output=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """The loopback Kafka broker of hack/kafka.sh (KRaft, from Maven Central's jars; started if
    needed, stopped after the session if this session started it), or the one named by
    AISRE_TEST_KAFKA_BOOTSTRAP: its bootstrap address."""
    named = os.environ.get("AISRE_TEST_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    script = ["bash", str(REPO / "hack" / "kafka.sh")]
    running = subprocess.run([*script, "status"], capture_output=True, text=True).returncode == 0
    # Ours is started with its SASL_SSL listener too (kafka_secure); one found running is used as it is.
    done = subprocess.run([*script, "start", *([] if running else ["--secure"])], check=True, timeout=600,
                          capture_output=True, text=True)
    yield done.stdout.strip().splitlines()[-1]
    if not running:
        subprocess.run([*script, "stop"], timeout=60, capture_output=True)


@pytest.fixture(scope="session")
def kafka_secure(kafka: str) -> dict[str, str]:
    """The AISRE_KAFKA_* settings (TLS, SASL SCRAM-SHA-512) of the broker's SASL_SSL listener
    (hack/kafka.sh secure-env); skips where the broker in use has none (one found running
    without it, or the one AISRE_TEST_KAFKA_BOOTSTRAP names)."""
    if os.environ.get("AISRE_TEST_KAFKA_BOOTSTRAP"):
        pytest.skip("a named broker (AISRE_TEST_KAFKA_BOOTSTRAP): its secure listener is unknown")
    found = subprocess.run(["bash", str(REPO / "hack" / "kafka.sh"), "secure-env"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip(found.stderr.strip()[-300:])
    return dict(line.split("=", 1) for line in found.stdout.split())


@pytest.fixture(scope="session")
def jaeger() -> Iterator[dict[str, str]]:
    """The loopback Jaeger v2 of hack/jaeger.sh (built from its Go module; started if
    needed, stopped after the session if this session started it): its OTLP/HTTP and
    query URLs."""
    script = ["bash", str(REPO / "hack" / "jaeger.sh")]
    running = subprocess.run([*script, "status"], capture_output=True, text=True).returncode == 0
    subprocess.run([*script, "start"], check=True, timeout=900, capture_output=True, text=True)
    urls = {what: subprocess.run([*script, "url", what], check=True, capture_output=True, text=True).stdout.strip()
            for what in ("otlp", "query")}
    yield urls
    if not running:
        subprocess.run([*script, "stop"], timeout=60, capture_output=True)


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, crds: None, prometheus: str) -> Iterator[OperatorThread]:
    """The operator for Investigation tests: detection off (tests count their own objects),
    and away from the namespaces where other tests and bench runs have operators of their own."""
    with OperatorThread(kubeconfig, free_port(), namespaces=(OWN_OPERATOR_NAMESPACES,), detection=False,
                        prometheus_url=prometheus) as running:
        yield running
