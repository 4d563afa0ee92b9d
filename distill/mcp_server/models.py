"""What the MCP tools return: pydantic models, so every tool has a structured output schema."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from distill.index import SearchHit
from distill.replay.run import abstain_answer
from distill.schemas import Bundle, GateReport, ReplayRun, RetrievalHit
from distill.secrets import scrub

M = TypeVar("M", bound=BaseModel)
TEXT_BUDGET = 1500  # characters of a playbook's text in a search hit; get_playbook has it all


class HitProvenance(BaseModel):
    sig_hash: str = Field(description="hash of the source line(s) the playbook was built from")
    file_paths: list[str] = Field(description="files the playbook touched")


class PlaybookHit(BaseModel):
    id: str = Field(description="pass it to get_playbook, or cite it as [id]")
    rank: int
    score: float = Field(description="fused rank score, normalised per query (best hit ≈ 1)")
    relevance: float | None = Field(
        description="absolute relevance to the query (0..1); replay abstains below its threshold"
    )
    category: str = Field(description="accepted or partially_accepted (a warning)")
    source: str = Field(description="the stream it came from")
    task_id: str | None
    title: str
    text: str = Field(description=f"the playbook, cut to {TEXT_BUDGET} characters")
    truncated: bool = Field(description="true when text was cut: get_playbook has all of it")
    provenance: HitProvenance


class SearchResult(BaseModel):
    index_version: int
    mode: Literal["hybrid", "vector", "fts"]
    hits: list[PlaybookHit]


class PlaybookProvenance(BaseModel):
    stream: str | None = None
    source_file: str | None = None
    line: int | None = None
    line_end: int | None = None
    sig_hash: str
    source_run_id: str | None = None
    recorded_at: str | None = None


class Playbook(BaseModel):
    id: str
    title: str
    text: str = Field(description="the whole playbook: the task and the accepted answer")
    category: str
    source: str
    task_id: str | None
    file_paths: list[str]
    validation_steps: list[str] = Field(description="how the work was verified")
    provenance: PlaybookProvenance
    index_version: int


class ReplayResult(BaseModel):
    run_id: str = Field(description="pass it to record_outcome once the answer is verified")
    verdict: Literal["passed", "failed", "abstained", "dry_run"]
    answer: str = Field(
        description="the model's answer; for abstained, why none was given; for dry_run, empty"
    )
    cited_ids: list[str]
    gate: GateReport | None = Field(description="the validation gate's checks of the answer")
    semantic_passed: bool | None
    escalated: bool
    task_id: str | None
    index_version: int | None
    hits: list[RetrievalHit]
    bundle: Bundle | None = Field(
        description="dry_run only: the grounding bundle (prompt, messages, exemplars, warnings, "
        "validation steps) to write the answer from"
    )


class OutcomeResult(BaseModel):
    observation_id: str
    created_at: str
    task_id: str
    run_id: str
    verdict: Literal["accept", "reject"]
    stream: str = Field(description="the file the observer_reviews row was appended to")
    effect: str


def scrubbed(model: M) -> M:
    """``model`` with every configured secret redacted, whatever field it hid in."""
    raw = model.model_dump_json()
    clean = scrub(raw)
    return model if clean == raw else type(model).model_validate_json(clean)


def hit_result(hit: SearchHit, rank: int, budget: int = TEXT_BUDGET) -> PlaybookHit:
    return PlaybookHit(
        id=hit.id,
        rank=rank,
        score=hit.score,
        relevance=hit.relevance,
        category=hit.category,
        source=hit.source,
        task_id=hit.task_id,
        title=hit.title,
        text=hit.text[:budget],
        truncated=len(hit.text) > budget,
        provenance=HitProvenance(sig_hash=hit.sig_hash, file_paths=hit.file_paths),
    )


def replay_result(run: ReplayRun) -> ReplayResult:
    final = run.attempts[-1] if run.attempts else None
    answer = abstain_answer(run) if run.verdict == "abstained" else run.final_answer
    return ReplayResult(
        run_id=run.run_id,
        verdict=run.verdict,
        answer=answer,
        cited_ids=run.cited_ids,
        gate=final.gate if final else None,
        semantic_passed=run.semantic_passed,
        escalated=run.escalated,
        task_id=run.task_id,
        index_version=run.index_version,
        hits=run.hits,
        bundle=run.bundle if run.verdict == "dry_run" else None,
    )
