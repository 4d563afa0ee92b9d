"""An acceptance fixture's own expectations, ``expected.json``, as typed models.

``distill/fixtures/acceptance/make_fixture.py`` writes the file beside the streams it describes;
``distill acceptance`` reads it here, so a misspelt key or a wrong type is an error that names
the field instead of a check that silently compares against nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from distill.errors import DistillError, format_validation_error
from distill.schemas import Category, ExportName


class _Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamCounts(_Expectation):
    lines: int
    blank: int
    skipped: int
    rows: int


class ExpectedSkip(_Expectation):
    """A source line collect must skip, with its reason."""

    stream: str
    line: int
    reason: str


class ExpectedQuarantine(_Expectation):
    """A record an export must quarantine, with its reason (or one of several)."""

    export: ExportName | Literal["any"]
    reason: str
    reason_any_of: list[str] | None = None
    record_id: str | None = None
    stream: str | None = None
    source_line: int | None = None
    task_id: str | None = None
    why: str | None = None

    @property
    def reasons(self) -> set[str]:
        return set(self.reason_any_of or [self.reason])


class ExpectedAbsent(_Expectation):
    """A record refused everywhere: in none of ``exports``."""

    record_id: str
    exports: list[ExportName]


class ExpectedRecord(_Expectation):
    """What a scored run (or, with ``export``, an exported row) must hold."""

    record_id: str
    export: Literal["rag", "sft"] | None = None
    category: Category | None = None
    response_contains: str | None = None
    response_not_contains: str | None = None
    response_equals: str | None = None
    instruction_equals: str | None = None
    validation_steps_count: int | None = None
    metadata_contains: dict[str, Any] | None = None
    why: str | None = None

    def problem(self, record: dict[str, Any] | None) -> str | None:
        """The first expectation ``record`` breaks (None when it holds them all)."""
        if record is None:
            return "record not found"
        metadata = record.get("metadata") or {}
        tests: dict[str, Callable[[], bool]] = {
            "category": lambda: record["category"] == self.category,
            "response_contains": lambda: str(self.response_contains) in record["response"],
            "response_not_contains": lambda: (
                str(self.response_not_contains) not in record["response"]
            ),
            "response_equals": lambda: record["response"] == self.response_equals,
            "instruction_equals": lambda: record["instruction"] == self.instruction_equals,
            "validation_steps_count": lambda: (
                len(record["validation_steps"]) == self.validation_steps_count
            ),
            "metadata_contains": lambda: all(
                metadata.get(key) == value for key, value in (self.metadata_contains or {}).items()
            ),
        }
        for key, holds in tests.items():
            if getattr(self, key) is not None and not holds():
                return f"{key} does not hold"
        return None


class ExpectedPair(_Expectation):
    task_id: str
    chosen: str
    rejected: str


class FixtureExpectations(_Expectation):
    """The whole of ``expected.json``."""

    home: str
    repo_root: str | None = None
    max_line_bytes: int | None = None
    counts: dict[str, StreamCounts] = {}
    skips: list[ExpectedSkip] = []
    quarantine: list[ExpectedQuarantine] = []
    absent: list[ExpectedAbsent] = []
    materialized: list[ExpectedRecord] = []
    preference_pairs: list[ExpectedPair] | None = None  # None: pairs are not checked
    no_pairs_tasks: list[str] = []
    categories: dict[str, Category] = {}


def load_expectations(fixture: Path) -> FixtureExpectations | None:
    """The fixture's ``expected.json`` (None when it has none)."""
    path = fixture / "expected.json"
    if not path.exists():
        return None
    try:
        return FixtureExpectations.model_validate_json(path.read_bytes())
    except ValidationError as err:
        raise DistillError(
            f"{path} is not a valid expected.json: {format_validation_error(err)}",
            hint="regenerate it: python distill/fixtures/acceptance/make_fixture.py",
        ) from err
