"""The bench's access to the API server: raw JSON reads (objects exactly as the server
returns them, camelCase, no model round trip), apply / patch / delete of any kind through
discovery, and a list-then-watch stream that another thread can stop at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import ProtocolError

from aisre.kube.scope import labels_match as scope_labels_match

FIELD_MANAGER = "aisre-bench"
WATCH_SECONDS = 240  # one watch request; the stream resumes after it
# When a kind exists in several groups (Event: core and events.k8s.io), the first wins.
_GROUP_PREFERENCE = ["", "apps", "batch", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "autoscaling"]
_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}


def _preference(resource: Any) -> tuple[int, int]:
    group = _GROUP_PREFERENCE.index(resource.group) if resource.group in _GROUP_PREFERENCE else len(_GROUP_PREFERENCE)
    return (group, 0 if getattr(resource, "preferred", False) else 1)


def labels_match(selector: Mapping[str, str], obj: Mapping[str, Any]) -> bool:
    """Whether an object's labels carry every key=value of a (matchLabels) selector."""
    return scope_labels_match({"matchLabels": dict(selector)}, obj["metadata"].get("labels"))


class BenchKubeError(RuntimeError):
    """A request the scenario needed failed; the message says which and why."""


def api_error(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


@dataclass(frozen=True)
class ObjectKey:
    api_version: str
    kind: str
    name: str
    namespace: str | None  # None: cluster-scoped

    def display(self) -> str:
        return f"{self.kind}/{self.name}"


class Kube:
    """One API client, shared by the runner and the simulators' threads (urllib3 pools
    are thread-safe)."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.api.close()

    # --- reads -------------------------------------------------------------------------------
    @staticmethod
    def raw(func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a generated client call, not deserialised into models."""
        response = func(*args, _preload_content=False, **kwargs)
        return json.loads(response.read())

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return self.raw(self.core.list_namespaced_pod, namespace)["items"]

    # --- any kind, through discovery ------------------------------------------------------------
    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api)
            return self._dynamic

    def resource(self, kind: str, api_version: str | None = None) -> Any:
        """The API resource of a kind (``api_version`` narrows it; else the preferred one)."""
        for attempt in range(2):
            try:
                if api_version:
                    return self.dynamic.resources.get(api_version=api_version, kind=kind)
                found = [r for r in self.dynamic.resources.search(kind=kind) if "/" not in r.name]  # no subresources
                if found:
                    return min(found, key=_preference)
                raise ResourceNotFoundError(kind)
            except ResourceNotFoundError:
                if attempt:
                    raise BenchKubeError(f"the cluster has no kind {kind}" + (f" in {api_version}" if api_version else ""))
                # A CRD applied a moment ago: refresh discovery once.
                self.dynamic.resources.invalidate_cache()
        raise AssertionError("unreachable")

    def key(self, kind: str, name: str, namespace: str, api_version: str | None = None) -> ObjectKey:
        res = self.resource(kind, api_version)
        return ObjectKey(res.group_version, kind, name, namespace if res.namespaced else None)

    def apply(self, manifest: dict[str, Any], namespace: str) -> tuple[ObjectKey, bool]:
        """Server-side apply of one object (namespaced objects into ``namespace``); returns
        its key and, for a cluster-scoped object, whether it did not exist before."""
        kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
        name = (manifest.get("metadata") or {}).get("name")
        if not (kind and api_version and name):
            raise BenchKubeError(f"every object needs apiVersion, kind and metadata.name: {str(manifest)[:200]}")
        res = self.resource(kind, api_version)
        body = json.loads(json.dumps(manifest))
        target_ns = namespace if res.namespaced else None
        if target_ns:
            body["metadata"]["namespace"] = target_ns
        existed = True  # only asked for cluster-scoped objects: those are deleted afterwards
        if target_ns is None:
            try:
                res.get(name=name)
            except kubernetes.dynamic.exceptions.NotFoundError:
                existed = False
        try:
            self.dynamic.server_side_apply(
                res, body=body, name=name, namespace=target_ns, field_manager=FIELD_MANAGER, force_conflicts=True
            )
        except kubernetes.dynamic.exceptions.DynamicApiError as error:
            raise BenchKubeError(f"apply {kind}/{name}: {error.summary()}") from error
        return ObjectKey(res.group_version, kind, name, target_ns), not existed

    def patch(self, key: ObjectKey, patch: Any, patch_type: str | None) -> None:
        """Patch one object; ``patch_type`` None is what `kubectl patch` does: strategic
        merge, except for custom resources, which refuse it (415) and get a JSON merge."""
        res = self.resource(key.kind, key.api_version)
        for content_type in [_PATCH_TYPES[patch_type]] if patch_type else [_PATCH_TYPES["strategic"], _PATCH_TYPES["merge"]]:
            try:
                self.dynamic.patch(
                    res, body=patch, name=key.name, namespace=key.namespace,
                    content_type=content_type, field_manager=FIELD_MANAGER,
                )
                return
            except kubernetes.dynamic.exceptions.DynamicApiError as error:
                if patch_type is None and error.status == 415:
                    continue
                raise BenchKubeError(f"patch {key.display()}: {error.summary()}") from error

    def delete(self, key: ObjectKey, *, missing_ok: bool = False) -> None:
        res = self.resource(key.kind, key.api_version)
        try:
            self.dynamic.delete(res, name=key.name, namespace=key.namespace, body={"propagationPolicy": "Background"})
        except kubernetes.dynamic.exceptions.NotFoundError:
            if not missing_ok:
                raise BenchKubeError(f"delete {key.display()}: not found") from None
        except kubernetes.dynamic.exceptions.DynamicApiError as error:
            raise BenchKubeError(f"delete {key.display()}: {error.summary()}") from error


class Stream:
    """List, then watch, one collection: yields ``(type, object)`` with the listed objects
    first as ``ADDED``. Resumes after each watch request ends and lists again when the
    resource version expired. ``stop()`` from any thread ends it at once: it shuts the
    socket down under the blocked read."""

    def __init__(self, list_func: Callable[..., Any], **kwargs: Any) -> None:
        self._list = list_func
        self._kwargs = kwargs
        self._response: Any = None
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()  # set first: the reader checks it after publishing its response
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001  (already closed)
                pass

    def events(self, timeout: float | None = None, *, synced: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
        """The events until ``stop()`` or, with ``timeout``, for that long (a timed stream
        is used once: the timer stops it). ``synced``: a ``("SYNCED", {})`` event follows
        each complete listing, so a caller can judge the whole collection."""
        timer = threading.Timer(timeout, self.stop) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            version: str | None = None
            while not self._stopped.is_set():
                if version is None:
                    listed = Kube.raw(self._list, **self._kwargs)
                    version = listed["metadata"]["resourceVersion"]
                    for item in listed["items"]:
                        yield "ADDED", item
                    if synced:
                        yield "SYNCED", {}
                for kind, obj in self._watch(version):
                    if kind == "ERROR":
                        if obj.get("code") != 410:
                            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                        version = None  # expired: list again
                        break
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        yield kind, obj
        finally:
            if timer is not None:
                timer.cancel()

    def _watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if self._stopped.is_set():
            return
        response = self._list(
            **self._kwargs, watch=True, resource_version=version, allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS, _request_timeout=WATCH_SECONDS + 30, _preload_content=False,
        )
        self._response = response
        try:
            if self._stopped.is_set():
                return
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason)
            for line in iter_resp_lines(response):
                if line.strip():
                    event = json.loads(line)
                    yield event["type"], event["object"]
        except (OSError, ProtocolError, ValueError):
            if not self._stopped.is_set():  # not the socket we shut down
                raise
        finally:
            self._response = None
            response.close()
