"""The package installs as one import root, `aisre`, and never shadows the standard
library's `operator`; the layering contract holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SUBPACKAGES = [
    "aisre",
    "aisre.api",
    "aisre.api.crd",
    "aisre.cli",
    "aisre.errors",
    "aisre.operator",
    "aisre.operator.main",
    "aisre.operator.handlers",
    "aisre.agents",
    "aisre.remediation",
]

CHECK = f"""
import importlib, operator, sys, sysconfig
stdlib = sysconfig.get_paths()["stdlib"]
assert operator.__file__.startswith(stdlib), operator.__file__
for name in {SUBPACKAGES!r}:
    module = importlib.import_module(name)
    assert "site-packages" in module.__file__, (name, module.__file__)
import aisre.operator
assert aisre.operator.__name__ == "aisre.operator"
print("ok")
"""


@pytest.mark.slow
def test_non_editable_install_into_fresh_venv(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(REPO)], check=True, env=env, cwd=tmp_path, timeout=600
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout.strip()
    # Nothing but `aisre` (and its dist-info) is installed from this project.
    ours = sorted(p.name for p in Path(site).iterdir() if p.name.startswith(("aisre", "operator", "agents")))
    assert ours == ["aisre", "aisre-0.1.0.dist-info"], ours
    assert not (Path(site) / "operator").exists()
    out = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    # From the checkout's root too, where an `operator/` folder sits beside the interpreter.
    out = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    script = env_dir / "bin" / "aisre"
    assert subprocess.run([script, "version"], capture_output=True, text=True, env=env).stdout.strip() == "0.1.0"
    # The built-ins load through the installed entry points (aisre plugins reads the same registry).
    listed = subprocess.run([script, "plugins", "--json", "--check"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    plugins = json.loads(listed.stdout)
    assert {p["group"] for p in plugins} == {"agents", "patterns", "actions", "sinks"}
    assert all(p["source"] == "builtin" and p["state"] == "Enabled" for p in plugins), plugins


def test_import_layers_contract() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run(
        [lint, "--config", str(REPO / "pyproject.toml")], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_layers_contract_catches_a_violation(tmp_path: Path) -> None:
    """The contract is live: an api module importing the operator breaks it."""
    import aisre.api

    api_dir = Path(aisre.api.__file__).parent
    if not os.access(api_dir, os.W_OK) or "site-packages" not in str(api_dir):
        pytest.skip("needs the non-editable install that `make test` does")
    bad = api_dir / "_layer_violation_probe.py"
    bad.write_text("import aisre.operator.main\n")
    try:
        lint = Path(sys.executable).parent / "lint-imports"
        out = subprocess.run(
            [lint, "--config", str(REPO / "pyproject.toml"), "--no-cache"], capture_output=True, text=True, cwd="/"
        )
        assert out.returncode != 0
        assert "aisre.api._layer_violation_probe -> aisre.operator.main" in out.stdout
    finally:
        bad.unlink()
