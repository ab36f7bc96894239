"""Keeps Kopf's view of the watched namespaces true when they are given as globs.

With globs (``bench-*``, ``!kube-*``) Kopf watches the Namespace objects and starts its
watch-streams for a namespace when it sees that namespace appear. Kopf 1.45 lists the
namespaces once, then starts a watch-stream that lists them again and skips what that
second list shows (as "initial listing"): a namespace created between the two lists, or
while a watch-stream restarts, is never served until some later event on it. That is the
"first Incident after the operator started waits a minute or more" of the bench and the
security suite (measured: the bench's first namespace, created as the operator became
ready, was missed; a security test's Incident had no handler run for 49 s).

So, every ``period`` seconds: list the namespaces, add the active ones that match a pattern
and were missing from Kopf's insights at two lists in a row (one list alone may predate a
deletion Kopf has just seen), and wake its orchestrator. Waking it is harmless
when nothing is missing (it recomputes the watch-streams it should run and finds them
running). Only used with globs: exact names and cluster-wide need no discovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable

import httpx
import structlog

# Kopf's own insights and pattern matching (the ``insights`` argument of ``kopf.operator``);
# kopf is pinned in pyproject, and tests/unit/test_namespace_sight.py checks the names exist.
from kopf._cogs.structs.references import Insights, match_namespace

log = structlog.get_logger("aisre.operator.namespaces")

PERIOD_S = 2.0


def uses_globs(patterns: Collection[str]) -> bool:
    """Whether Kopf discovers the namespaces (patterns) rather than being told them (names)."""
    return any(ch in pattern for pattern in patterns for ch in "*?!,")


def watched(namespace: str, patterns: Collection[str]) -> bool:
    """Whether Kopf serves ``namespace`` given the operator's namespace settings: all when
    there are none, else the names, or the patterns as Kopf matches them."""
    if not patterns:
        return True
    if uses_globs(patterns):
        return any(match_namespace(namespace, pattern) for pattern in patterns)  # type: ignore[arg-type]
    return namespace in patterns


def missing_namespaces(active: Iterable[str], patterns: Collection[str], known: Collection[str | None]) -> set[str]:
    """The active namespaces that match a pattern and that Kopf does not serve."""
    return {name for name in active
            if name not in known and any(match_namespace(name, pattern) for pattern in patterns)}  # type: ignore[arg-type]


async def active_namespaces(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/api/v1/namespaces", params={"fieldSelector": "status.phase=Active"})
    response.raise_for_status()
    return [item["metadata"]["name"] for item in response.json().get("items") or []]


async def keep_in_sight(insights: Insights, patterns: Collection[str], client: httpx.AsyncClient,
                        period: float = PERIOD_S) -> None:
    """Runs until cancelled (before Kopf starts, so Kopf's shutdown leaves it alone); closes
    ``client`` when it ends."""
    missed_before: set[str] = set()
    async with client:
        while True:
            await asyncio.sleep(period)
            if not insights.ready_namespaces.is_set():
                continue  # Kopf's first listing is not done: it is adding them itself
            try:
                active = await active_namespaces(client)
            except (httpx.HTTPError, ValueError) as error:
                log.debug("namespaces not listed", error=str(error))
                continue
            async with insights.revised:
                missed = missing_namespaces(active, patterns, insights.namespaces)
                missing, missed_before = missed & missed_before, missed
                if missing:
                    log.warning("namespaces Kopf had not taken up are served now", namespaces=sorted(missing))
                    insights.namespaces.update(missing)
                insights.revised.notify_all()
