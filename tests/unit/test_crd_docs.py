"""docs/crd-reference.md is generated from the models and committed: it must be current."""

from __future__ import annotations

from pathlib import Path

from aisre.api.crd import KINDS
from aisre.api.docs import render_crd_reference
from aisre.api.remediation_policy import RemediationPolicySpec
from aisre.cli import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "crd-reference.md"


def test_committed_reference_matches_the_models() -> None:
    assert REFERENCE.read_text() == render_crd_reference(), "docs/crd-reference.md is stale: run `make docs`"


def test_reference_covers_every_kind_and_field() -> None:
    text = render_crd_reference()
    for model in KINDS:
        assert f"\n## {model.KIND}\n" in text
    for field in RemediationPolicySpec.model_fields.values():
        assert f"| `{field.alias}`" in text
    assert "approve mode needs at least one approver" in text  # the CEL rules are there
    assert "`^([0-9]{1,6}(s\\|m\\|h)){1,3}$`" in text  # a | inside a table cell is escaped


def test_docs_check_fails_on_a_stale_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "crd-reference.md"
    path.write_text("old\n")
    assert main(["docs", "-o", str(path), "--check"]) == 1
    assert "make docs" in capsys.readouterr().err
    assert main(["docs", "-o", str(path)]) == 0 and main(["docs", "-o", str(path), "--check"]) == 0
