"""msgspec mirrors of the row schemas, for the pipeline's hot path.

The pydantic models in :mod:`distill.schemas` are the contract; these structs accept a subset
of what they accept (msgspec is strict: no ``"5"`` for an int, no ``schema_`` for ``schema``)
and validate in a few microseconds instead of tens. Every caller treats a refusal here as
"ask pydantic": :func:`fast_accepts` is only ever a shortcut to *yes*, so what is accepted and
refused, and every error message, stays pydantic's. ``tests/test_fast_schemas.py`` holds the
two to that with hypothesis: whatever a struct accepts, the model accepts with the same values.

:class:`ScoredRow` is also the record type the exporters read (attribute for attribute the
same as :class:`~distill.schemas.ScoredRun`); a row only pydantic accepts (a lax coercion)
becomes one through :func:`scored_row`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel

from distill.schemas.common import Category, Message, Provenance, QuarantineReason, SkipReason
from distill.schemas.evidence import EvidenceRecord, ScoredRun
from distill.schemas.exports import PairSide, PreferenceSample, RagSample, SftSample
from distill.schemas.ledger import PairRef, QuarantineRecord, SkipRecord

# Python's re, unlike pydantic's Rust regex, lets `$` match before a final newline: \Z does not.
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class _Row(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields refused, as :class:`~distill.schemas.common.Record` refuses them."""


class ProvenanceRow(_Row, kw_only=True):
    stream: str
    source_file: str
    line: Positive
    line_end: Positive | None = None
    pointer: str | None = None
    sig_hash: Sha256
    source_run_id: NonEmpty
    recorded_at: str


class _EvidenceRow(_Row, kw_only=True):
    id: NonEmpty
    stream: str
    native_id: str
    task_id: str | None = None
    created_at: str
    instruction: str
    response: str
    file_paths: list[str] = msgspec.field(default_factory=list)
    validation_steps: list[str] = msgspec.field(default_factory=list)
    signals: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    provenance: ProvenanceRow


class EvidenceRow(_EvidenceRow, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["evidence.v1"] = "evidence.v1"


class ScoredRow(_EvidenceRow, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["scored_run.v1"] = "scored_run.v1"
    category: Category
    rule: str


class MessageRow(_Row, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: str


_Messages = Annotated[list[MessageRow], msgspec.Meta(min_length=1)]
_OneMessage = Annotated[list[MessageRow], msgspec.Meta(min_length=1, max_length=1)]


class RagRow(_Row, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["rag_sample.v1"] = "rag_sample.v1"
    id: NonEmpty
    title: str
    text: NonEmpty
    instruction: str
    response: NonEmpty
    category: Literal["accepted", "partially_accepted", "needs_human_review"]
    source: str
    task_id: str | None
    file_paths: list[str]
    validation_steps: list[str]
    provenance: ProvenanceRow


class SftRow(_Row, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["sft_sample.v1"] = "sft_sample.v1"
    id: NonEmpty
    prompt: _Messages
    completion: _OneMessage
    quality_score: Literal["accepted", "partially_accepted"]
    task_id: str | None
    provenance: ProvenanceRow


class RagChecked(msgspec.Struct):
    """What the RAG export's re-read checks of a written playbook: its id (duplicates) and
    category (the policy), typed as :class:`RagRow` types them; the rest of the row, which the
    record type checked as it was written, is skipped unbuilt."""

    id: NonEmpty
    category: Literal["accepted", "partially_accepted", "needs_human_review"]


class SftChecked(msgspec.Struct):
    """What the SFT export's re-read checks of a written pair: its id and quality score, typed
    as :class:`SftRow` types them (see :class:`RagChecked`)."""

    id: NonEmpty
    quality_score: Literal["accepted", "partially_accepted"]


class PairSideRow(_Row, kw_only=True):
    source_run_id: NonEmpty
    task_id: NonEmpty
    sig_hash: Sha256
    category: Category
    stream: str
    source_file: str
    line: int


class PreferenceRow(_Row, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["preference_sample.v1"] = "preference_sample.v1"
    id: NonEmpty
    task_id: NonEmpty
    prompt: _Messages
    chosen: _OneMessage
    rejected: _OneMessage
    chosen_provenance: PairSideRow
    rejected_provenance: PairSideRow
    recorded_at: str


class PairRefRow(_Row, kw_only=True):
    chosen_id: str
    rejected_id: str


class QuarantineRow(_Row, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["quarantine.v1"] = "quarantine.v1"
    export: Literal["rag", "sft", "preference"]
    reason: QuarantineReason
    detail: str
    record_id: str | None = None
    stream: str | None = None
    line: int | None = None
    sig_hash: str | None = None
    category: Category | None = None
    pair: PairRefRow | None = None
    recorded_at: str


class SkipRow(_Row, kw_only=True, rename={"schema_": "schema"}):
    schema_: Literal["skip.v1"] = "skip.v1"
    stream: str
    source_file: str
    line: Positive
    line_end: Positive | None = None
    reason: SkipReason
    detail: str
    raw_sha256: str
    raw_bytes: int
    recorded_at: str


FAST_TYPES: dict[type[BaseModel], type[_Row]] = {
    Provenance: ProvenanceRow,
    EvidenceRecord: EvidenceRow,
    ScoredRun: ScoredRow,
    Message: MessageRow,
    RagSample: RagRow,
    SftSample: SftRow,
    PairSide: PairSideRow,
    PreferenceSample: PreferenceRow,
    PairRef: PairRefRow,
    QuarantineRecord: QuarantineRow,
    SkipRecord: SkipRow,
}


def fast_accepts(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    """Whether ``model``'s struct accepts ``payload`` (True means pydantic would too; False
    means nothing: ask pydantic)."""
    struct = FAST_TYPES.get(model)
    if struct is None:
        return False
    try:
        msgspec.convert(payload, struct)
    except msgspec.ValidationError:
        return False
    return True


_SCORED = msgspec.json.Decoder(ScoredRow)


def decode_scored(data: bytes) -> ScoredRow | None:
    """A scored_run.v1 line as a :class:`ScoredRow`; None when msgspec refuses it (pydantic
    may still accept it: :func:`read_scored`)."""
    try:
        return _SCORED.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def read_scored(data: bytes) -> ScoredRow:
    """A scored_run.v1 line pydantic accepts, as a :class:`ScoredRow`; raises pydantic's
    ValidationError when it does not."""
    row = decode_scored(data)
    return row if row is not None else scored_row(ScoredRun.model_validate_json(data))


def scored_row(record: ScoredRun) -> ScoredRow:
    """The struct of a record pydantic validated (its values, coercions applied)."""
    origin = record.provenance
    return ScoredRow(
        id=record.id,
        stream=record.stream,
        native_id=record.native_id,
        task_id=record.task_id,
        created_at=record.created_at,
        instruction=record.instruction,
        response=record.response,
        file_paths=list(record.file_paths),
        validation_steps=list(record.validation_steps),
        signals=dict(record.signals),
        metadata=dict(record.metadata),
        provenance=ProvenanceRow(**origin.model_dump()),
        category=record.category,
        rule=record.rule,
    )


def provenance_dict(origin: ProvenanceRow) -> dict[str, Any]:
    """The provenance as ``Provenance.model_dump()`` spells it (every field, None included)."""
    return msgspec.structs.asdict(origin)


__all__ = [
    "FAST_TYPES",
    "EvidenceRow",
    "ProvenanceRow",
    "RagChecked",
    "ScoredRow",
    "SftChecked",
    "decode_scored",
    "fast_accepts",
    "provenance_dict",
    "read_scored",
    "scored_row",
]
