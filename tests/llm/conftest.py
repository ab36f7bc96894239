"""Fixtures for the LLM tests: the fake Messages API server and configs pointing at it.

No test here touches the network beyond loopback: the real ``anthropic`` client talks
to ``fake_anthropic.FakeAnthropic`` on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_anthropic import FakeAnthropic  # noqa: E402

from aisre.llm.settings import LLMConfig  # noqa: E402


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK also reads ANTHROPIC_* from the environment: the tests use only what they pass."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def llm_config(fake: FakeAnthropic) -> LLMConfig:
    return LLMConfig(api_key="sk-ant-test-not-a-real-key-000000", base_url=fake.url, timeout_seconds=2.0,
                     max_retries=2, default_enabled=True)


def _cluster_fixtures() -> ModuleType:
    """tests/cluster/conftest.py, loaded under another name, for its cluster fixtures."""
    path = Path(__file__).resolve().parents[1] / "cluster" / "conftest.py"
    spec = importlib.util.spec_from_file_location("aisre_cluster_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cluster = _cluster_fixtures()
kubeconfig = _cluster.kubeconfig
kubectl = _cluster.kubectl
crds = _cluster.crds
api_client = _cluster.api_client


@pytest.fixture
def own_crds(kubectl: Any, crds: None) -> None:
    """This checkout's CRDs, applied again just before the test: on a cluster shared with
    other checkouts, theirs (without status.llm) may have replaced ours since the session
    began, and the API server would prune the fields they lack."""
    _cluster.apply_crds(kubectl)


@pytest.fixture
def llm_namespace(kubectl: Any, own_crds: None) -> Iterator[str]:
    """A namespace only the LLM-configured operator of these tests watches (aisre-llm-*)."""
    with _cluster.temporary_namespace(kubectl, "aisre-llm-") as name:
        yield name
