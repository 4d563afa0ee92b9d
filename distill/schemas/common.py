"""Enums and small models shared by every record type."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Category(StrEnum):
    """The four verdicts a scored run can carry, from most to least trusted."""

    accepted = "accepted"
    partially_accepted = "partially_accepted"
    needs_human_review = "needs_human_review"
    rejected = "rejected"

    @property
    def trust(self) -> int:
        """Order used by "most conservative": rejected < needs_human_review < partial < accepted."""
        return _TRUST[self]


_TRUST = {
    Category.rejected: 0,
    Category.needs_human_review: 1,
    Category.partially_accepted: 2,
    Category.accepted: 3,
}


def most_conservative(categories: list[Category]) -> Category:
    return min(categories, key=lambda category: category.trust)


class SkipReason(StrEnum):
    """Why a source line (or a folded group, or a document) never became evidence."""

    invalid_json = "invalid_json"
    not_an_object = "not_an_object"
    invalid_utf8 = "invalid_utf8"
    line_too_long = "line_too_long"
    missing_id = "missing_id"
    missing_timestamp = "missing_timestamp"
    invalid_timestamp = "invalid_timestamp"
    too_deeply_nested = "too_deeply_nested"
    unprocessable_row = "unprocessable_row"
    unit_too_large = "unit_too_large"
    filtered_out = "filtered_out"


class QuarantineReason(StrEnum):
    """The closed set of reasons an exporter refuses a record or a pair."""

    missing_provenance = "missing_provenance"
    missing_source_run_id = "missing_source_run_id"
    empty_content = "empty_content"
    schema_violation = "schema_violation"
    unsafe_sft_category = "unsafe_sft_category"
    unsafe_rag_category = "unsafe_rag_category"
    invalid_preference_pairing = "invalid_preference_pairing"
    hallucinated_file_path = "hallucinated_file_path"
    duplicate_id = "duplicate_id"
    self_pairing = "self_pairing"
    category_disallowed = "category_disallowed"


class Record(BaseModel):
    """Base of every written record: unknown fields are refused, the tag is spelled ``schema``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Provenance(Record):
    """Where a derived record came from, down to the byte."""

    stream: str
    source_file: str
    line: int = Field(ge=1, description="the unit's first line (1 for a document)")
    line_end: int | None = Field(
        default=None, ge=1, description="last line of a folded group or document; None: one line"
    )
    pointer: str | None = Field(
        default=None, description='JSON pointer into a document ("": all of it); None: lines'
    )
    sig_hash: Sha256Hex = Field(
        description="canonical hash of a single line's row; sha256 of a multi-line unit's bytes"
    )
    source_run_id: str = Field(min_length=1)
    recorded_at: str


class Message(Record):
    role: str = Field(pattern=r"^(system|user|assistant)$")
    content: str
