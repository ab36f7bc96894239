"""The deploy-broke-it pattern: a workload that hurts now, deployed shortly before.

Reads the ``DeployEvent`` findings of the deploy-events agent. An image change points at
the image (BadImage), any other change at configuration (BadConfigChange). The score is an
inference, lower than specific evidence (an admission refusal, an unschedulable pod), so a
built-in pattern that sees the actual mechanism still ranks first.
"""

from __future__ import annotations

from collections.abc import Iterable

from aisre.api.plugins import PluginMeta
from aisre.api.taxonomy import RootCauseCategory as C
from aisre.plugins import PatternPlugin
from aisre.ranking.candidate import Candidate
from aisre.ranking.evidence import EvidenceIndex

KIND = "DeployEvent"
SCORE = 0.45


def detect(ix: EvidenceIndex) -> Iterable[Candidate]:
    latest: dict[str, list] = {}
    for finding in ix.kind(KIND):
        latest.setdefault(str(finding.data.get("owner")), []).append(finding)
    for owner, deploys in latest.items():
        if not ix.impacted(owner):
            continue  # a deploy of a healthy workload is just a deploy
        deploys.sort(key=lambda f: f.time.timestamp() if f.time else 0.0)
        last = deploys[-1]
        category = C.BAD_IMAGE if last.data.get("change") == "image" else C.BAD_CONFIG_CHANGE
        yield Candidate(category, owner, SCORE,
                        f"{owner} hurts since its deploy of version {last.data.get('version')} "
                        f"({last.data.get('change')} change)", [last.id] + [f.id for f in ix.of(owner)][:3],
                        "deploy-broke-it")


PATTERN = PatternPlugin(PluginMeta(name="deploy-broke-it", version="0.1.0",
                                   description="a workload that hurts now, deployed shortly before"), detect)
