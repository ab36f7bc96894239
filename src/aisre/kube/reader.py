"""An async reader of the API server, shared by the agents of one investigation.

Built on httpx with the credentials the ``kubernetes`` client resolves from the
kubeconfig or the in-cluster service account. Reads are memoised per reader: agents
that ask for the same list at the same time share one request, so running agents
concurrently costs the API server no more than running them in turn. Secrets are only
ever listed as metadata (``PartialObjectMetadataList``): their values are never fetched.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import httpx
import kubernetes

from aisre.kube.resources import RESOURCES

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class KubeAccessError(Exception):
    """The API server refused or failed a read; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """The kubernetes client's resolved credentials: the kubeconfig (a path, or the
    default search), else the in-cluster service account."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    except (kubernetes.config.ConfigException, FileNotFoundError, TypeError):
        kubernetes.config.load_incluster_config(client_configuration=config)
    return config


def bearer_token(config: kubernetes.client.Configuration) -> str | None:
    """The bearer token (without its prefix), wherever this client version keeps it."""
    token = config.api_key.get("BearerToken") or config.api_key.get("authorization")
    if not token:
        return None
    return token.removeprefix("Bearer ").strip()


def connect(kubeconfig: str | None = None, *, timeout: float = 10.0, max_connections: int | None = 16) -> httpx.AsyncClient:
    """An httpx client for the API server of the kubeconfig (or the in-cluster one).
    Long-lived watches need a client of their own with no connection cap
    (``max_connections=None``): each open watch holds a connection."""
    config = configuration(kubeconfig)
    context = ssl.create_default_context(cafile=config.ssl_ca_cert) if config.ssl_ca_cert else ssl.create_default_context()
    if not config.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file and config.key_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    headers = {"Accept": "application/json"}
    token = bearer_token(config)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        base_url=config.host,
        verify=context,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=5.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=8),
    )


class ClusterReader:
    """Memoised reads for one investigation. Not for long-lived caching: create one per run."""

    def __init__(self, client: httpx.AsyncClient, *, max_items: int = 2000) -> None:
        self._client = client
        self._max_items = max_items
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self.requests = 0
        self.truncated: list[str] = []
        self._cut: set[tuple[Any, ...]] = set()  # the lists cut at max_items

    async def _get_json(self, path: str, params: Mapping[str, Any] | None = None, accept: str | None = None) -> Any:
        self.requests += 1
        headers = {"Accept": accept} if accept else None
        try:
            response = await self._client.get(path, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise KubeAccessError(f"GET {path}: {error!r}") from error
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise KubeAccessError(f"GET {path}: {response.status_code} {message}", response.status_code)
        return response.json()

    def _memo(self, key: tuple[Any, ...], factory: Any) -> asyncio.Task[Any]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._inflight[key] = task
        return task

    async def list(
        self,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Items of a resource (all pages up to ``max_items``; the cut is recorded)."""
        resource = RESOURCES[plural]
        metadata_only = plural == "secrets"

        async def fetch() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            params: dict[str, Any] = {"limit": min(500, self._max_items)}
            if label_selector:
                params["labelSelector"] = label_selector
            if field_selector:
                params["fieldSelector"] = field_selector
            while True:
                page = await self._get_json(
                    resource.path(namespace), params, METADATA_ONLY if metadata_only else None
                )
                items.extend(page.get("items") or [])
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
                if len(items) >= self._max_items:
                    self.truncated.append(f"{plural} in {namespace or 'cluster'}: kept {len(items)}")
                    self._cut.add(key)
                    break
                params["continue"] = token
            for item in items:  # list items lack kind; agents want it
                item.setdefault("kind", resource.kind)
            return items

        key = ("list", plural, namespace, label_selector, field_selector)
        return list(await asyncio.shield(self._memo(key, fetch)))

    def _listed(self, plural: str, namespace: str | None) -> list[dict[str, Any]] | None:
        """The items of a complete, unfiltered list already read, if any (no round trip)."""
        task = self._inflight.get(("list", plural, namespace, None, None))
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        if ("list", plural, namespace, None, None) in self._cut:
            return None  # cut at max_items: absence proves nothing
        return task.result()

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        resource = RESOURCES[plural]
        if plural == "secrets":
            raise KubeAccessError("secret values are never read; list secrets for their metadata")

        listed = self._listed(plural, namespace)
        if listed is not None:  # this Investigation already read them all: the same snapshot
            return next((item for item in listed if item["metadata"].get("name") == name), None)

        async def fetch() -> dict[str, Any] | None:
            try:
                return await self._get_json(resource.path(namespace, name))
            except KubeAccessError as error:
                if error.status == 404:
                    return None
                raise

        return await asyncio.shield(self._memo(("get", plural, namespace, name), fetch))

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        limit_bytes: int = 65536,
        tail_lines: int = 500,
    ) -> str:
        """A container's log (bounded). An absent previous log is an empty string."""

        async def fetch() -> str:
            self.requests += 1
            params = {"container": container, "limitBytes": limit_bytes, "tailLines": tail_lines}
            if previous:
                params["previous"] = "true"
            path = RESOURCES["pods"].path(namespace, pod) + "/log"
            try:
                response = await self._client.get(path, params=params, headers={"Accept": "*/*"})
            except httpx.HTTPError as error:
                raise KubeAccessError(f"GET {path}: {error!r}") from error
            if response.status_code in (400, 404):
                return ""  # no such (previous) container log
            if response.status_code >= 400:
                raise KubeAccessError(f"GET {path}: {response.status_code} {response.text[:200]}", response.status_code)
            return response.text

        return await asyncio.shield(self._memo(("logs", namespace, pod, container, previous), fetch))
