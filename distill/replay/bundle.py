"""task + retrieved hits → a context bundle: exemplars, warnings, validation steps, prompts.

Every piece is labelled with its record id so the answer can cite it. The bundle is fitted to a
budget measured in the target model's tokens when a tokenizer is known (characters otherwise),
dropping the lowest-ranked material first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from distill.index import SearchHit
from distill.schemas import Bundle, BundlePiece, Message, ValidationStep

MAX_EXEMPLARS = 3
MAX_WARNINGS = 2
MAX_STEPS = 8
SYSTEM_PROMPT = (
    "You answer engineering tasks for a team, grounded in the team's own accepted work. "
    "Use the playbooks below; cite the ids you rely on in square brackets, e.g. [audits:AUD-1]; "
    "heed the warnings; end with the validation steps (lines starting with 'verify' or "
    "'check'). Do not mention files that are not in the playbooks."
)
# The completion prompt asks for the source before the answer: a base model that has just
# named a playbook goes on to write from it, and one asked to cite after a long answer mostly
# forgets to (benchmarks/replay.py; README "Replay").
SOURCES_CUE = "Sources: ["
Counter = Callable[[str], int]


def build_bundle(
    task: str, hits: Sequence[SearchHit], *, budget: int = 6000, count: Counter | None = None
) -> Bundle:
    """Pick exemplars (accepted), warnings (partially accepted) and steps; fit the budget."""
    unit = "tokens" if count is not None else "chars"
    measure = count or len
    exemplars = [
        _piece(h, rank, "exemplar") for rank, h in enumerate(hits, 1) if h.category == "accepted"
    ][:MAX_EXEMPLARS]
    warnings = [
        _piece(h, rank, "warning")
        for rank, h in enumerate(hits, 1)
        if h.category == "partially_accepted"
    ][:MAX_WARNINGS]
    chosen = {p.id for p in exemplars + warnings}
    steps = _steps([h for h in hits if h.id in chosen])
    trimmed: list[str] = []
    while True:
        bundle = _render(task, exemplars, warnings, steps, budget, unit, trimmed)
        used = max(measure(_chat_text(bundle)), measure(bundle.prompt))
        if used <= budget or not (exemplars or warnings):
            return bundle.model_copy(update={"used": used})
        lowest = max(exemplars + warnings, key=lambda p: p.rank)
        trimmed.append(lowest.id)
        exemplars = [p for p in exemplars if p.id != lowest.id]
        warnings = [p for p in warnings if p.id != lowest.id]
        steps = [s for s in steps if s.id != lowest.id]


def _piece(hit: SearchHit, rank: int, kind: str) -> BundlePiece:
    instruction, _, response = hit.text.partition("\n\n")
    return BundlePiece(
        id=hit.id,
        kind=kind,
        rank=rank,
        category=hit.category,
        instruction=instruction.strip(),
        response=response.strip(),
    )


def _steps(hits: Sequence[SearchHit]) -> list[ValidationStep]:
    seen: set[str] = set()
    steps = []
    for hit in hits:
        for step in hit.validation_steps:
            key = step.lower()
            if key not in seen:
                seen.add(key)
                steps.append(ValidationStep(id=hit.id, step=step))
    return steps[:MAX_STEPS]


def _render(
    task: str,
    exemplars: list[BundlePiece],
    warnings: list[BundlePiece],
    steps: list[ValidationStep],
    budget: int,
    unit: str,
    trimmed: list[str],
) -> Bundle:
    context = []
    for piece in exemplars:
        context.append(
            f"[{piece.id}] accepted playbook\nTask: {piece.instruction}\nAnswer: {piece.response}"
        )
    for piece in warnings:
        context.append(
            f"[{piece.id}] WARNING, only partially accepted: reuse with care\n"
            f"Task: {piece.instruction}\nAnswer: {piece.response}"
        )
    if steps:
        context.append(
            "Validation steps seen in accepted work:\n"
            + "\n".join(f"- {s.step} [{s.id}]" for s in steps)
        )
    user = ("\n\n".join(context) + "\n\n" if context else "") + f"Task: {task}"
    messages = [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=user)]
    demos = "".join(
        f"Task: {p.instruction}\n{SOURCES_CUE}{p.id}]\nAnswer: {p.response}\n\n" for p in exemplars
    )
    prompt = f"{demos}Task: {task}\n" + (SOURCES_CUE if exemplars else "Answer:")
    return Bundle(
        task=task,
        exemplars=exemplars,
        warnings=warnings,
        validation_steps=steps,
        messages=messages,
        prompt=prompt,
        budget=budget,
        budget_unit=unit,
        used=0,
        trimmed=list(trimmed),
    )


def _chat_text(bundle: Bundle) -> str:
    return "\n".join(message.content for message in bundle.messages)


def completion_answer(bundle: Bundle, continuation: str) -> str:
    """The answer a completion-style model wrote after ``bundle.prompt``, in the chat form:
    the answer first, then its ``Sources: [id]`` line (the prompt asked for the source first)."""
    if not bundle.prompt.endswith(SOURCES_CUE):
        return continuation.strip()
    cited, found, answer = continuation.partition("\nAnswer:")
    if not found:  # the model never got past the sources line: keep what it wrote
        return (SOURCES_CUE + continuation).strip()
    return f"{answer.strip()}\n{SOURCES_CUE}{cited.strip()}"
