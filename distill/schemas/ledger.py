"""skip.v1 and quarantine.v1: where every row that is not in an output goes, with a reason."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.schemas.common import Category, QuarantineReason, Record, SkipReason

ExportName = Literal["rag", "sft", "preference"]


class SkipRecord(Record):
    """A source line, folded group of lines or document that could not become evidence."""

    schema_: Literal["skip.v1"] = Field(default="skip.v1", alias="schema")
    stream: str
    source_file: str
    line: int = Field(ge=1)
    line_end: int | None = Field(default=None, ge=1, description="last line of a multi-line unit")
    reason: SkipReason
    detail: str
    raw_sha256: str
    raw_bytes: int
    recorded_at: str


class PairRef(Record):
    chosen_id: str
    rejected_id: str


class QuarantineRecord(Record):
    """A record (or a candidate pair) an exporter refused, and why."""

    schema_: Literal["quarantine.v1"] = Field(default="quarantine.v1", alias="schema")
    export: ExportName
    reason: QuarantineReason
    detail: str
    record_id: str | None = None
    stream: str | None = None
    line: int | None = None
    sig_hash: str | None = None
    category: Category | None = None
    pair: PairRef | None = Field(default=None, description="set when a candidate pair was refused")
    recorded_at: str
