"""replay_run.v1: one line of data/_kb/replay_runs.jsonl — which collect reads back as a stream."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.schemas.common import Message, Record, Sha256Hex

ReplayVerdict = Literal["passed", "failed", "dry_run"]


class BundlePiece(Record):
    """A piece of retrieved context, labelled with the record id an answer can cite."""

    id: str
    kind: Literal["exemplar", "warning"]
    rank: int
    category: str
    instruction: str
    response: str


class ValidationStep(Record):
    id: str
    step: str


class Bundle(Record):
    task: str
    exemplars: list[BundlePiece]
    warnings: list[BundlePiece]
    validation_steps: list[ValidationStep]
    messages: list[Message] = Field(description="chat style")
    prompt: str = Field(description="few-shot completion style")
    budget: int
    budget_unit: Literal["tokens", "chars"]
    used: int
    trimmed: list[str] = Field(default_factory=list, description="ids dropped for the budget")


class RetrievalHit(Record):
    id: str
    rank: int
    score: float
    category: str


class GateCheck(Record):
    name: str
    passed: bool
    detail: str


class GateReport(Record):
    passed: bool
    checks: list[GateCheck]


class Usage(Record):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Attempt(Record):
    role: Literal["local", "escalation"]
    model: str
    endpoint: str = Field(description="URL without credentials, or `embedded:<file>`")
    prompt_style: Literal["chat", "completion"]
    latency_ms: float
    usage: Usage
    response: str
    error: str | None = None
    gate: GateReport | None


class ReplayRun(Record):
    schema_: Literal["replay_run.v1"] = Field(default="replay_run.v1", alias="schema")
    run_id: str
    created_at: str
    task: str
    task_id: str | None
    task_hash: Sha256Hex
    retrieval_mode: Literal["hybrid", "none"]
    index_version: int | None
    hits: list[RetrievalHit]
    bundle_hash: Sha256Hex
    bundle: Bundle
    attempts: list[Attempt]
    escalation_allowed: bool
    escalated: bool
    final_answer: str
    cited_ids: list[str]
    verdict: ReplayVerdict
