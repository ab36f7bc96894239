"""The fault patterns ranking runs: the ``aisre.patterns`` registry (``aisre.plugins``).

The built-in library (``aisre.ranking.patterns.PATTERNS``, its ``@pattern`` functions) is one
entry point, ``builtin``; third-party patterns follow, each under its own name. Every
pattern plugin's call is metered. A third-party pattern is also fenced: its exceptions cost
only its own candidates, its candidates must be ``Candidate`` values of the taxonomy that
cite evidence the index holds, scores are clamped to 0..1, and at most ``MAX_CANDIDATES``
are kept. Built-in patterns are trusted as before (a bug there fails loudly in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aisre.api.plugins import PluginGroup
from aisre.api.taxonomy import RootCauseCategory
from aisre.plugins import Plugin, metered, refused, registry
from aisre.ranking.candidate import Candidate
from aisre.ranking.evidence import EvidenceIndex

MAX_CANDIDATES = 20
GROUP = PluginGroup.PATTERNS.short


def functions_of(plugin: Plugin) -> list[Callable[[EvidenceIndex], Iterable[Candidate]]]:
    items: Any = plugin.obj if isinstance(plugin.obj, (list, tuple)) else [plugin.obj]
    return [getattr(item, "detect", item) for item in items]


def _fenced(plugin: Plugin, ix: EvidenceIndex) -> list[Candidate]:
    kept: list[Candidate] = []
    for detect in functions_of(plugin):
        for candidate in list(detect(ix)):
            if len(kept) >= MAX_CANDIDATES:
                break
            if not isinstance(candidate, Candidate) or not isinstance(candidate.category, RootCauseCategory):
                continue
            cited = [i for i in candidate.evidence_ids if i in ix.by_id]
            if not cited:
                continue  # a hypothesis must rest on evidence (habit 5)
            candidate.evidence_ids = cited
            candidate.score = min(1.0, max(0.0, float(candidate.score)))
            candidate.pattern = candidate.pattern or plugin.name
            kept.append(candidate)
    return kept


def candidates(ix: EvidenceIndex, plugins: list[Plugin] | None = None) -> list[Candidate]:
    """Every enabled pattern's candidates for the index, built-ins first."""
    plugins = registry().of(PluginGroup.PATTERNS) if plugins is None else plugins
    found: list[Candidate] = []
    for plugin in plugins:
        if plugin.builtin:
            with metered(GROUP, plugin.name):
                for detect in functions_of(plugin):
                    found.extend(detect(ix))
            continue
        if not plugin.limit.take():
            refused(GROUP, plugin.name)
            continue
        try:
            with metered(GROUP, plugin.name, plugin.meta.cost_per_call_usd):
                found.extend(_fenced(plugin, ix))
        except Exception:  # counted as an error by the meter; the other patterns still rank
            continue
    return found
