"""Finding and parsing scenario files. A file that cannot be read or does not match the
format becomes a ``LoadError`` (reported as that scenario's error), never an exception
that would stop the whole benchmark."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aisre.bench.scenario import Scenario, substitute


@dataclass(frozen=True)
class LoadedScenario:
    path: Path
    raw: dict[str, Any]  # as parsed, before $NAMESPACE substitution
    scenario: Scenario

    @property
    def name(self) -> str:
        return self.scenario.name

    def for_namespace(self, namespace: str) -> Scenario:
        """The scenario with ``$NAMESPACE`` replaced everywhere."""
        return Scenario.model_validate(substitute(self.raw, namespace))


@dataclass(frozen=True)
class LoadError:
    path: Path
    name: str  # the file's `name` if it could be read, else the file stem
    tags: tuple[str, ...]
    error: str


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(file)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def load_file(path: Path) -> LoadedScenario | LoadError:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return LoadError(path, path.stem, (), f"invalid scenario file: {error}")
    name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else path.stem
    tags = raw.get("tags") if isinstance(raw, dict) and isinstance(raw.get("tags"), list) else []
    if not isinstance(raw, dict):
        return LoadError(path, name, (), "invalid scenario file: not a YAML mapping")
    try:
        # Validate with a namespace-shaped placeholder, as the run will see it.
        Scenario.model_validate(substitute(raw, "bench-ns"))
        scenario = Scenario.model_validate(raw)
    except ValidationError as error:
        return LoadError(path, name, tuple(str(t) for t in tags), f"invalid scenario: {_describe(error)}")
    return LoadedScenario(path, raw, scenario)


def load_dir(directory: Path) -> list[LoadedScenario | LoadError]:
    """Every ``*.yaml``/``*.yml`` under ``directory`` (recursively), sorted by path;
    a second file with an already used name is an error."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no such scenario directory: {directory}")
    paths = sorted({*directory.rglob("*.yaml"), *directory.rglob("*.yml")})
    seen: dict[str, Path] = {}
    out: list[LoadedScenario | LoadError] = []
    for path in paths:
        item = load_file(path)
        if isinstance(item, LoadedScenario):
            if item.name in seen:
                item = LoadError(path, item.name, tuple(item.scenario.tags), f"duplicate scenario name (also in {seen[item.name]})")
            else:
                seen[item.name] = path
        out.append(item)
    return out


def tags_of(item: LoadedScenario | LoadError) -> tuple[str, ...]:
    return tuple(item.scenario.tags) if isinstance(item, LoadedScenario) else item.tags


def filter_by_tags(items: Iterable[LoadedScenario | LoadError], tags: Iterable[str]) -> list[LoadedScenario | LoadError]:
    """Scenarios carrying any of ``tags`` (all of them when no tag is given). A file that
    failed to load is kept when its tags could be read and match, or when no tag is given."""
    wanted = set(tags)
    items = list(items)
    if not wanted:
        return items
    return [item for item in items if wanted & set(tags_of(item))]
