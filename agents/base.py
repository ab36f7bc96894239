"""What every agent shares: its context (the reader, the resolved scope, the window and
the bounds) and a collector that turns observations into findings with stable ids.

Not an agent itself: the independence contract covers the agent modules only, and each
of them may use this module.
"""

from __future__ import annotations

import json
import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from aisre.api.evidence import AgentResult, Finding, finding_id
from aisre.api.investigation import AgentStatus
from aisre.api.meta import ResourceRef
from aisre.kube.reader import ClusterReader, KubeAccessError
from aisre.kube.scope import Scope
from aisre.plugins import PluginSettings


@dataclass(frozen=True)
class Bounds:
    """Caps that keep an investigation cheap and its status small."""

    log_bytes_per_container: int = 64 * 1024
    log_bytes_total: int = 1024 * 1024
    log_pods: int = 24
    events: int = 2000
    findings_per_agent: int = 120


@dataclass(frozen=True)
class PrometheusSettings:
    """Where the metrics agent reads series: the URL, optional auth, and a per-query timeout
    (the operator's config fills this from AISRE_PROMETHEUS_*; None there: no metrics agent)."""

    url: str
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    query_timeout_s: float = 5.0


@dataclass
class AgentContext:
    reader: ClusterReader
    scope: Scope
    window_start: dt.datetime
    now: dt.datetime
    bounds: Bounds = field(default_factory=Bounds)
    prometheus: PrometheusSettings | None = None
    plugin: PluginSettings | None = None  # a plugin agent's own settings (url, Secret); None for built-ins


async def list_secrets(reader: ClusterReader, namespace: str) -> list[dict[str, Any]] | None:
    """The namespace's Secrets (metadata only), or None when RBAC does not allow listing
    them: the Helm chart grants no Secret access by default (RBAC cannot limit a list to
    metadata), and the agents then skip what needs Secrets rather than fail."""
    try:
        return await reader.list("secrets", namespace)
    except KubeAccessError as error:
        if error.status == 403:
            return None
        raise


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def resource_of(obj: dict[str, Any]) -> ResourceRef:
    return ResourceRef(kind=obj.get("kind", "?"), name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))


@dataclass(frozen=True)
class TemplateReference:
    """An object a pod template names: a ConfigMap, Secret or PVC it mounts or reads."""

    kind: str
    name: str
    optional: bool = False
    key: str | None = None  # for configMapKeyRef / secretKeyRef
    source: str = ""  # how the template uses it: volume, envFrom or env
    env_name: str = ""  # for env: the variable it fills


def template_references(template: dict[str, Any]) -> list[TemplateReference]:
    """Every ConfigMap, Secret and PersistentVolumeClaim a pod template uses, through
    volumes (projected too), envFrom and env valueFrom — in that order."""
    spec = template.get("spec") or {}
    refs: list[TemplateReference] = []
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            refs.append(TemplateReference("ConfigMap", volume["configMap"].get("name", ""), bool(volume["configMap"].get("optional")),
                                          source="volume"))
        if volume.get("secret"):
            refs.append(TemplateReference("Secret", volume["secret"].get("secretName", ""), bool(volume["secret"].get("optional")),
                                          source="volume"))
        if volume.get("persistentVolumeClaim"):
            refs.append(TemplateReference("PersistentVolumeClaim", volume["persistentVolumeClaim"].get("claimName", ""),
                                          source="volume"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if source.get(key):
                    refs.append(TemplateReference(kind, source[key].get("name", ""), bool(source[key].get("optional")),
                                                  source="volume"))
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env_from in container.get("envFrom") or []:
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if env_from.get(key):
                    refs.append(TemplateReference(kind, env_from[key].get("name", ""), bool(env_from[key].get("optional")),
                                                  source="envFrom"))
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if source.get(key):
                    refs.append(TemplateReference(kind, source[key].get("name", ""), bool(source[key].get("optional")),
                                                  source[key].get("key", ""), source="env", env_name=env.get("name", "")))
    return refs


HOSTISH_KEY = re.compile(r"(HOST|ADDR|ADDRESS|URL|URI|ENDPOINT|SERVER|SERVICE|DSN|BROKER|UPSTREAM)S?$", re.I)


@functools.lru_cache(maxsize=4096)
def _host_patterns(service: str, namespace: str) -> tuple[re.Pattern[str], ...]:
    name = re.escape(service)
    dns = rf"{name}(?:\.{re.escape(namespace)})?(?:\.svc(?:\.cluster\.local)?)?"
    return (
        re.compile(rf"{dns}(?::\d{{2,5}})?"),  # the whole value of a host-like key
        re.compile(rf"://(?:[^@/\s]+@)?{dns}(?=[:/\s\"',;?]|$)"),  # a URL's host
        re.compile(rf"(?:^|[\s=,;\"'(@]){dns}:\d{{2,5}}\b"),  # host:port
        re.compile(rf"\b{name}\.{re.escape(namespace)}\.svc\b"),  # the cluster DNS name
    )


def mentions_host(key: str, value: str, service: str, namespace: str) -> bool:
    """Whether a config value names the service as a host to connect to: a URL's host,
    ``host:port``, the cluster DNS name, or the whole value of a host-like key
    (``DB_HOST=orders-db``). A bare word elsewhere (``POSTGRES_DB=orders``) is not one."""
    if service not in value:
        return False
    whole, url, host_port, dns_name = _host_patterns(service, namespace)
    if HOSTISH_KEY.search(key) and whole.fullmatch(value.strip()):
        return True
    return bool(url.search(value) or host_port.search(value) or dns_name.search(value))


class Findings:
    """Collects one agent's findings; ids are stable hashes of structured fields."""

    def __init__(self, agent: str, limit: int) -> None:
        self.agent = agent
        self.limit = limit
        self.items: dict[str, Finding] = {}
        self.dropped = 0

    def add(
        self,
        kind: str,
        summary: str,
        *,
        key: tuple[str, ...],
        resource: ResourceRef | None = None,
        time: dt.datetime | None = None,
        **data: Any,
    ) -> Finding | None:
        fid = finding_id(self.agent, kind, *key)
        if fid in self.items:
            return self.items[fid]
        if len(self.items) >= self.limit:
            self.dropped += 1
            return None
        finding = Finding(id=fid, agent=self.agent, kind=kind, summary=summary[:1000], resource=resource, time=time, data=data)
        self.items[fid] = finding
        return finding

    def result(self, *, message: str = "", truncated: list[str] | None = None) -> AgentResult:
        cut = list(truncated or [])
        if self.dropped:
            cut.append(f"{self.agent}: {self.dropped} findings over the cap of {self.limit}")
        return AgentResult(
            agent=self.agent,
            status=AgentStatus.SUCCESS if self.items else AgentStatus.NO_DATA,
            findings=list(self.items.values()),
            message=message,
            truncated=cut,
        )


def program_of(container: dict[str, Any]) -> tuple[str, str, str]:
    """What a container runs: the image's repository (any tag) with its command and args."""
    image = str(container.get("image") or "").split("@", 1)[0]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return repository, json.dumps(container.get("command")), json.dumps(container.get("args"))


def programs(template: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["name"]: program_of(c) for c in (template.get("spec") or {}).get("containers") or []}


def cronjob_of(job: dict[str, Any]) -> str | None:
    """The CronJob a Job is a run of: its owner, else what its name and schedule annotation say
    (``<cronjob>-<minutes>``, as the CronJob controller names its Jobs)."""
    meta = job["metadata"]
    owner = next((o.get("name") for o in meta.get("ownerReferences") or [] if o.get("kind") == "CronJob"), None)
    if owner:
        return owner
    if "batch.kubernetes.io/cronjob-scheduled-timestamp" in (meta.get("annotations") or {}):
        match = re.fullmatch(r"(.+)-\d+", meta.get("name", ""))
        return match.group(1) if match else None
    return None
