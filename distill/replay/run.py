"""replay: task → retrieval → (abstain) → bundle → local model → gate → (escalation) → one logged
ReplayRun. The one code path of the CLI, ``distill serve`` and ``distill eval replay``."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distill.clock import utc_now
from distill.errors import DistillError
from distill.home import Home
from distill.index import PlaybookSearch, SearchHit
from distill.index.relevance import DEFAULT_MIN_RELEVANCE, content_terms
from distill.jsonio import append_line_locked, canonical_json, model_line
from distill.replay.bundle import build_bundle
from distill.replay.clients import ChatModel
from distill.replay.gate import GatePolicy, cited_ids
from distill.replay.limits import DEFAULT_DEADLINE_S, Deadline, fit_bundle
from distill.replay.rejected import rejected_runs
from distill.replay.semantic import GateEvidence, copy_of, gate_answer, semantic_passed
from distill.schemas import Attempt, Bundle, ReplayRequest, ReplayRun, RetrievalHit, Usage
from distill.schemas.replay import ReplayVerdict
from distill.secrets import scrub
from distill.sources import BUILTIN_SOURCES

REPLAY_STREAM = "replay_runs.jsonl"
ModelFactory = Callable[[], ChatModel]


@dataclass(frozen=True)
class ReplayOptions:
    top_k: int = 8
    no_retrieval: bool = False
    dry_run: bool = False
    allow_escalation: bool = False
    local_only: bool = False
    max_tokens: int = 200
    budget: int = 6000
    repo_root: Path | None = None
    task_id: str | None = None
    log: bool | None = None  # None: log every run but a dry run (a dry run writes nothing)
    deadline: float | None = DEFAULT_DEADLINE_S  # seconds for every model call together
    min_relevance: float = DEFAULT_MIN_RELEVANCE  # below it a hit is not evidence for the task
    eval_run: bool = False  # made by `distill eval replay`: never evidence for the loop

    @classmethod
    def from_request(
        cls,
        request: ReplayRequest,
        *,
        max_tokens: int,
        repo_root: Path | None,
        deadline: float | None,
        min_relevance: float = DEFAULT_MIN_RELEVANCE,
    ) -> ReplayOptions:
        """A served request's options: its per-run flags over the server's own settings."""
        return cls(
            top_k=request.top_k,
            no_retrieval=request.no_retrieval,
            dry_run=request.dry_run,
            allow_escalation=request.allow_escalation,
            local_only=request.local_only,
            max_tokens=request.max_tokens or max_tokens,
            repo_root=repo_root,
            task_id=request.task_id,
            deadline=deadline,
            min_relevance=min_relevance,
        )


def replay(
    home: Home,
    task: str,
    options: ReplayOptions,
    *,
    retriever: Callable[[], PlaybookSearch] | None,
    local: ModelFactory,
    escalation: ModelFactory | None = None,
) -> ReplayRun:
    """Answer ``task`` grounded in the index, gate the answer, log the run, return it.

    ``retriever`` is required unless ``options.no_retrieval`` (the explicit baseline): a missing
    or empty index is an error, never a silently empty bundle. Nothing reaches the escalation
    model unless ``allow_escalation`` is set and ``local_only`` is not. A task that does not
    fit the model's context raises ``TaskTooLong`` before any call; ``options.deadline`` bounds
    every model call and retry together, from the first call on. No configured secret reaches
    the log or the returned run.
    """
    task = task.strip()
    if not task:
        raise DistillError("the task is empty", hint='pass --task "what to do"')
    hits: list[SearchHit] = []
    opened = None
    if not options.no_retrieval:
        if retriever is None:
            raise DistillError("retrieval needs an index", hint="run `distill index build`")
        opened = retriever()
        hits = opened.search(task, mode="hybrid", top_k=options.top_k)
    relevant = [h for h in hits if (h.relevance or 0.0) >= options.min_relevance]
    if opened is not None and not relevant:  # the team has never done this: no model call
        bundle = build_bundle(task, [], budget=options.budget)
        run, line = _without_secrets(_record(task, options, hits, opened, bundle, []))
    else:
        model = None if options.dry_run else local()
        bundle = fit_bundle(
            task,
            relevant,
            budget_chars=options.budget,
            count=_token_counter(model),
            context=model.context_tokens if model is not None else None,
            max_tokens=options.max_tokens,
            model=model.name if model is not None else "the model",
        )
        attempts = []
        if model is not None:
            evidence = _evidence(home, hits, bundle, opened, options)
            attempts = _attempts(model, escalation, bundle, evidence, options)
        run, line = _without_secrets(_record(task, options, hits, opened, bundle, attempts))
    if options.log if options.log is not None else not options.dry_run:
        append_line_locked(home.kb_dir / REPLAY_STREAM, line)
    return run


def _evidence(
    home: Home,
    hits: list[SearchHit],
    bundle: Bundle,
    opened: PlaybookSearch | None,
    options: ReplayOptions,
) -> GateEvidence:
    """What the semantic checks need: every retrieved playbook, the threshold, and the rejected
    runs of the task (``--task-id``, else the tasks of the bundle's playbooks, and any whose
    instruction states this task)."""
    if opened is None:
        return GateEvidence()
    chosen = {p.id for p in bundle.exemplars + bundle.warnings}
    tasks = [options.task_id] if options.task_id else [h.task_id for h in hits if h.id in chosen]
    task_terms = frozenset(content_terms(bundle.task))
    return GateEvidence(
        texts={h.id: h.text for h in hits},
        relevance={h.id: h.relevance for h in hits},
        min_relevance=options.min_relevance,
        rejected=rejected_runs(home, [t for t in tasks if t], task_terms),
        terms=opened.terms,
        streams=frozenset(BUILTIN_SOURCES) | {h.source for h in hits},
        task_terms=task_terms,
    )


def _attempts(
    model: ChatModel,
    escalation: ModelFactory | None,
    bundle: Bundle,
    retrieved: GateEvidence,
    options: ReplayOptions,
) -> list[Attempt]:
    """The local attempt, then the escalation when the gate failed and it is allowed; one
    deadline, started at the first call, for both."""
    policy = GatePolicy(repo_root=options.repo_root)
    deadline = Deadline.start(options.deadline) if options.deadline is not None else None
    attempts = [_attempt("local", model, bundle, retrieved, policy, options.max_tokens, deadline)]
    failed = not (attempts[-1].gate and attempts[-1].gate.passed)
    if failed and options.allow_escalation and not options.local_only and escalation:
        tokens = options.max_tokens * 2
        attempts.append(
            _attempt("escalation", escalation(), bundle, retrieved, policy, tokens, deadline)
        )
    return attempts


def abstain_answer(run: ReplayRun) -> str:
    """What an abstained run answers (the CLI prints it; serve sends it as the content)."""
    best = max(run.hits, key=lambda h: h.relevance or 0.0, default=None)
    found = (
        f"the closest playbook, {best.id}, has relevance {best.relevance:.2f}"
        if best is not None and best.relevance is not None
        else "nothing was retrieved"
    )
    threshold = run.min_relevance if run.min_relevance is not None else 0.0
    return (
        "No grounded answer: none of the team's accepted playbooks is relevant to this task "
        f"({found}; {threshold:.2f} is needed). The team has not done this before, so no "
        "model was asked."
    )


def scrubbed_run(run: ReplayRun) -> ReplayRun:
    """``run`` with every configured secret redacted (the same object when there is none)."""
    return _without_secrets(run)[0]


def _without_secrets(run: ReplayRun) -> tuple[ReplayRun, bytes]:
    """The run and its log line, scrubbed as a whole: the last wall, whatever a secret came
    in with (an upstream's echo, an answer, the task itself)."""
    raw = model_line(run)
    line = scrub(raw.decode()).encode()
    return (run, raw) if line == raw else (ReplayRun.model_validate_json(line), line)


def _token_counter(model: ChatModel | None) -> Callable[[str], int] | None:
    """The model's own token count when it has one (embedded), else None (characters)."""
    if model is None or model.count_tokens("probe") is None:
        return None
    return lambda text: model.count_tokens(text) or len(text)


def _attempt(
    role: str,
    model: ChatModel,
    bundle: Bundle,
    retrieved: GateEvidence,
    policy: GatePolicy,
    max_tokens: int,
    deadline: Deadline | None,
) -> Attempt:
    try:
        completion = model.complete(bundle, max_tokens=max_tokens, deadline=deadline)
    except DistillError as err:  # a failed call is still an attempt, logged with its error
        return Attempt(
            role=role,
            model=model.name,
            endpoint=model.endpoint,
            prompt_style=model.prompt_style,
            latency_ms=0.0,
            usage=Usage(),
            response="",
            error=scrub(str(err)),
            gate=None,
        )
    return Attempt(
        role=role,
        model=model.name,
        endpoint=model.endpoint,
        prompt_style=model.prompt_style,
        latency_ms=round(completion.latency_ms, 1),
        usage=Usage(
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens
        ),
        response=completion.text,
        gate=gate_answer(completion.text, bundle, retrieved, policy),
    )


def _record(
    task: str,
    options: ReplayOptions,
    hits: list[SearchHit],
    opened: PlaybookSearch | None,
    bundle: Bundle,
    attempts: list[Attempt],
) -> ReplayRun:
    final = attempts[-1] if attempts else None
    answer = final.response if final else ""
    retrieved = [h.id for h in hits]
    cited = cited_ids(answer, retrieved)
    bundle_json = canonical_json(bundle.model_dump(mode="json"))
    return ReplayRun(
        run_id=uuid.uuid4().hex,
        created_at=utc_now(micro=True),
        task=task,
        task_id=options.task_id,
        task_hash=hashlib.sha256(task.encode()).hexdigest(),
        retrieval_mode="none" if options.no_retrieval else "hybrid",
        index_version=opened.version if opened is not None else None,
        hits=[
            RetrievalHit(
                id=h.id,
                rank=rank,
                score=h.score,
                category=h.category,
                relevance=h.relevance,
                cosine=h.cosine,
                bm25=h.bm25,
            )
            for rank, h in enumerate(hits, 1)
        ],
        bundle_hash=hashlib.sha256(bundle_json).hexdigest(),
        bundle=bundle,
        attempts=attempts,
        escalation_allowed=options.allow_escalation and not options.local_only,
        escalated=any(a.role == "escalation" for a in attempts),
        final_answer=answer,
        cited_ids=cited,
        verdict=_verdict(options, opened, bundle, final),
        min_relevance=None if options.no_retrieval else options.min_relevance,
        semantic_passed=semantic_passed(final.gate) if final else None,
        reuse_of=copy_of(answer, cited, {h.id: h.text for h in hits}) if answer else None,
        eval_run=options.eval_run,
    )


def _verdict(
    options: ReplayOptions, opened: PlaybookSearch | None, bundle: Bundle, final: Attempt | None
) -> ReplayVerdict:
    if opened is not None and not (bundle.exemplars or bundle.warnings):
        return "abstained"  # nothing cleared the threshold (a fitted bundle is never empty)
    if options.dry_run:
        return "dry_run"
    return "passed" if final and final.gate and final.gate.passed else "failed"
