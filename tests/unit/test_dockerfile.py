"""The image, without a container engine: the Dockerfile's stages are parsed and checked
(multi-stage, slim, non-root, no compilers in the runtime stage, entrypoint `aisre run`),
and the build stage's steps are run locally — its COPY lines fill a build context, its
RUN lines run with the image's paths mapped into a temporary directory — and the runtime
stage's entrypoint runs from the virtual environment they produced."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPILERS = ("gcc", "g++", "cc", "clang", "build-essential", "make", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    image: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.steps if ins == instruction]


def parse(text: str) -> list[Stage]:
    """Instructions per stage: continuation lines joined, comments dropped, ARGs before
    the first FROM substituted into FROM lines."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif instruction == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], rest)
            words = image.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            stages[-1].steps.append((instruction, rest))
    return stages


STAGES = parse(DOCKERFILE.read_text())
BUILD, FINAL = STAGES[0], STAGES[-1]


def test_multi_stage_from_one_slim_base() -> None:
    assert len(STAGES) >= 2 and BUILD.name
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", FINAL.image), FINAL.image
    # The venv is copied across stages: its interpreter link needs the same Python there.
    assert BUILD.image == FINAL.image


def test_runtime_stage_is_non_root_with_no_compilers_and_runs_the_operator() -> None:
    users = FINAL.all("USER")
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]  # numeric: runAsNonRoot can verify it
    for command in FINAL.all("RUN"):
        words = set(re.split(r"[\s;&|]+", command))
        assert not words & set(COMPILERS), command
        assert "apt-get" not in words and "pip" not in command, command  # nothing built or fetched here
    assert json.loads(FINAL.all("ENTRYPOINT")[-1]) == ["aisre", "run"]
    copies = FINAL.all("COPY")
    assert copies == [f"--from={BUILD.name} /venv /venv"], copies  # only the installed environment
    assert "PATH=/venv/bin:$PATH" in FINAL.all("ENV")[-1]


def test_the_wheel_is_built_as_the_tests_install_the_project() -> None:
    """Same backend pin as pyproject, no build isolation (as `make install`), no editable install."""
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    runs = " ".join(BUILD.all("RUN"))
    assert all(f'"{pin}"' in runs or f" {pin}" in runs for pin in backend), (backend, runs)
    assert "--no-build-isolation" in runs and "--no-deps" in runs and "-e " not in runs
    assert "--no-build-isolation" in (REPO / "Makefile").read_text()


def _mapped(command: str, root: Path, python: str) -> str:
    """A RUN line with the image's absolute paths under ``root``, its `python` the local one,
    and pip's cache allowed (a local cache is no part of an image)."""
    for path in ("/opt/build", "/src", "/dist", "/venv"):
        command = re.sub(rf"(?<![\w/]){re.escape(path)}(?=[/\s]|$)", str(root / path.lstrip("/")), command)
    command = re.sub(r"(^|&&\s*)python(?=\s)", lambda m: f"{m.group(1)}{shlex.quote(python)}", command)
    return command.replace("--no-cache-dir", "")


def _copy_into_context(args: str, workdir: Path) -> None:
    *sources, dest = shlex.split(args)
    target = workdir / dest if not dest.startswith("/") else Path(dest)
    for source in sources:
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


@pytest.mark.slow
def test_the_build_stage_runs_and_the_entrypoint_answers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    python = sys._base_executable  # the interpreter itself, as the image's `python`, not the tests' venv
    workdir = tmp_path
    for instruction, args in BUILD.steps:
        if instruction == "WORKDIR":
            workdir = tmp_path / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            _copy_into_context(args, workdir)
        elif instruction == "RUN":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", _mapped(args, tmp_path, python)], cwd=workdir,
                                  env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"RUN {args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    wheels = list((tmp_path / "dist").glob("aisre-*.whl"))
    assert len(wheels) == 1, wheels
    # The runtime stage: its ENV, then its ENTRYPOINT (with --help appended, as `docker run IMAGE --help` would).
    venv_bin = tmp_path / "venv" / "bin"
    run_env = {**env, "PATH": f"{venv_bin}:{env.get('PATH', '')}", "PYTHONDONTWRITEBYTECODE": "1"}
    entrypoint = json.loads(FINAL.all("ENTRYPOINT")[-1])
    for argv in ([entrypoint[0], "--help"], [*entrypoint, "--help"], [entrypoint[0], "version"]):
        done = subprocess.run(argv, env=run_env, cwd="/", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (argv, done.stderr)
        assert shutil.which(entrypoint[0], path=run_env["PATH"]) == str(venv_bin / "aisre")
    assert "--peering" in subprocess.run([*entrypoint, "--help"], env=run_env, capture_output=True, text=True).stdout
    # Installed, not linked to the sources: the checkout's folders are not on the path.
    where = subprocess.run([str(venv_bin / "python"), "-c", "import aisre.operator.main as m; print(m.__file__)"],
                           env=run_env, cwd="/", capture_output=True, text=True, check=True).stdout
    assert "site-packages" in where and str(REPO) not in where
