"""The Helm chart grants no Secret access by default (RBAC cannot limit a list to
metadata): the topology and changes agents then skip what needs Secrets instead of
failing, and never call a Secret missing that they could not see."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aisre.agents import changes, topology
from aisre.agents.base import AgentContext
from aisre.kube.reader import ClusterReader, KubeAccessError
from aisre.kube.scope import Scope

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WEB = {
    "kind": "Deployment", "apiVersion": "apps/v1",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "creationTimestamp": "2025-12-31T00:00:00Z"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "r/web:1", "envFrom": [
            {"secretRef": {"name": "db-password"}}, {"configMapRef": {"name": "web-config"}}]}]}}},
}


class Reader(ClusterReader):
    """Empty lists for everything; Secrets refused (403) unless allowed."""

    def __init__(self, secrets_allowed: bool) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.secrets_allowed = secrets_allowed

    async def list(self, plural: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        if plural == "secrets" and not self.secrets_allowed:
            raise KubeAccessError(f"GET /api/v1/namespaces/{namespace}/secrets: 403 forbidden", 403)
        return [dict(WEB)] if plural == "deployments" else []

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return None


def context(secrets_allowed: bool) -> AgentContext:
    scope = Scope(namespace="shop", description="Deployment/web", workloads=[dict(WEB)], target_ref="Deployment/web")
    return AgentContext(reader=Reader(secrets_allowed), scope=scope, window_start=NOW - dt.timedelta(hours=1), now=NOW)


def missing(result) -> set[tuple[str, str]]:
    return {(f.data["ref_kind"], f.data["name"]) for f in result.findings if f.kind == "MissingReference"}


@pytest.mark.parametrize("secrets_allowed", [True, False])
async def test_topology_reports_only_what_it_could_see(secrets_allowed: bool) -> None:
    result = await topology.gather(context(secrets_allowed))
    expected = {("ConfigMap", "web-config")} | ({("Secret", "db-password")} if secrets_allowed else set())
    assert missing(result) == expected


async def test_changes_without_secret_access_still_reports() -> None:
    result = await changes.gather(context(secrets_allowed=False))
    assert result.status.value in ("SUCCESS", "NO_DATA")


async def test_other_refusals_still_fail_the_agent() -> None:
    class Refusing(Reader):
        async def list(self, plural: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
            raise KubeAccessError("GET services: 403 forbidden", 403)

    ctx = context(True)
    ctx.reader = Refusing(True)
    with pytest.raises(KubeAccessError):
        await topology.gather(ctx)
