"""rag_sample.v1, sft_sample.v1, preference_sample.v1: the three datasets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.schemas.common import Category, Message, Provenance, Record, Sha256Hex


class RagSample(Record):
    """A playbook: accepted (or partially accepted) work, as the index and replay see it."""

    schema_: Literal["rag_sample.v1"] = Field(default="rag_sample.v1", alias="schema")
    id: str = Field(min_length=1)
    title: str
    text: str = Field(
        min_length=1, description="instruction and response, the text that is embedded"
    )
    instruction: str
    response: str = Field(min_length=1)
    category: Literal[Category.accepted, Category.partially_accepted, Category.needs_human_review]
    source: str
    task_id: str | None
    file_paths: list[str]
    validation_steps: list[str]
    provenance: Provenance


class SftSample(Record):
    """TRL conversational prompt/completion: completion-only loss applies by default."""

    schema_: Literal["sft_sample.v1"] = Field(default="sft_sample.v1", alias="schema")
    id: str = Field(min_length=1)
    prompt: list[Message] = Field(min_length=1)
    completion: list[Message] = Field(min_length=1, max_length=1)
    # The type is the firewall's first wall: rejected / needs_human_review cannot be stored here.
    quality_score: Literal[Category.accepted, Category.partially_accepted]
    task_id: str | None
    provenance: Provenance


class PairSide(Record):
    source_run_id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    sig_hash: Sha256Hex
    category: Category
    stream: str
    source_file: str
    line: int


class PreferenceSample(Record):
    """TRL explicit-prompt conversational preference pair, with both sides' provenance."""

    schema_: Literal["preference_sample.v1"] = Field(default="preference_sample.v1", alias="schema")
    id: str = Field(min_length=1)
    task_id: str = Field(min_length=1)
    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1, max_length=1)
    rejected: list[Message] = Field(min_length=1, max_length=1)
    chosen_provenance: PairSide
    rejected_provenance: PairSide
    recorded_at: str
