"""docs/cli.md is generated from the commands: it must never go stale."""

from distill.cli.reference import render_reference

from .conftest import REPO


def test_cli_reference_is_current() -> None:
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/cli.md is stale: run `python -m distill.cli.reference > docs/cli.md`"
    )
