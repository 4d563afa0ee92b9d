"""evidence.v1 (collect's output) and scored_run.v1 (score's output)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from distill.schemas.common import Category, Provenance, Record


class _EvidenceFields(Record):
    id: str = Field(
        min_length=1, description="`<stream>:<native id>`; the source_run_id downstream"
    )
    stream: str
    native_id: str
    task_id: str | None = None
    created_at: str = Field(description="the row's own time, normalised to UTC ISO-8601")
    instruction: str
    response: str
    file_paths: list[str] = Field(default_factory=list)
    validation_steps: list[str] = Field(default_factory=list)
    signals: dict[str, Any] = Field(
        default_factory=dict, description="the fields the stream's category rule reads"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="fields outside the stream's contract, kept as-is"
    )
    provenance: Provenance


class EvidenceRecord(_EvidenceFields):
    schema_: Literal["evidence.v1"] = Field(default="evidence.v1", alias="schema")


class ScoredRun(_EvidenceFields):
    schema_: Literal["scored_run.v1"] = Field(default="scored_run.v1", alias="schema")
    category: Category
    rule: str = Field(description="which rule decided the category, for humans and audits")
