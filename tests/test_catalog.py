"""docs/rules.md is generated from the rules and cards; the committed file must be current."""
from __future__ import annotations

from cds_hooks.catalog import PART_B_RULES, catalog_markdown
from cds_hooks.rules import REGISTRY

from .conftest import ROOT
from .test_cli import run_cli


def test_committed_catalogue_is_current():
    committed = (ROOT / "docs" / "rules.md").read_text("utf-8")
    assert committed == catalog_markdown(), "docs/rules.md is out of date: run `cds-hooks catalog`"


def test_catalogue_lists_every_rule_and_every_part_b_number():
    text = catalog_markdown()
    for rule in REGISTRY:
        assert f"### {rule.id}" in text
    for number in PART_B_RULES:
        assert f"| {number} | " in text


def test_catalog_command_writes_and_checks(tmp_path):
    output = tmp_path / "rules.md"
    assert run_cli("catalog", "--check", "--output", str(output), cwd=tmp_path).returncode == 1
    written = run_cli("catalog", "--output", str(output), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert output.read_text() == catalog_markdown()
    assert run_cli("catalog", "--check", "--output", str(output), cwd=tmp_path).returncode == 0
