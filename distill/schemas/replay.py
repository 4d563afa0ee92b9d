"""replay_run.v1: one line of data/_kb/replay_runs.jsonl — which collect reads back as a stream."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.schemas.common import Message, Record, Sha256Hex

# abstained: nothing retrieved clears the relevance threshold, so no model was called
ReplayVerdict = Literal["passed", "failed", "abstained", "dry_run"]


class BundlePiece(Record):
    """A piece of retrieved context, labelled with the record id an answer can cite."""

    id: str
    kind: Literal["exemplar", "warning"]
    rank: int
    category: str
    instruction: str
    response: str
    relevance: float | None = Field(default=None, description="of its hit, for this task")


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
    condensed: list[str] = Field(
        default_factory=list, description="ids cut to fit the budget (head, steps and checks)"
    )


class RetrievalHit(Record):
    id: str
    rank: int
    score: float = Field(description="the fused rank score, normalised per query")
    category: str
    relevance: float | None = Field(default=None, description="absolute: cosine and BM25")
    cosine: float | None = None
    bm25: float | None = Field(default=None, description="BM25 over the query's best case, 0..1")


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
    min_relevance: float | None = Field(
        default=None, description="the relevance threshold applied (None: no retrieval)"
    )
    semantic_passed: bool | None = Field(
        default=None, description="the final answer passed every semantic check of the gate"
    )
    reuse_of: str | None = Field(
        default=None, description="the cited playbook the final answer nearly copies"
    )
    eval_run: bool = Field(default=False, description="made by `distill eval replay`")
