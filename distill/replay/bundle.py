"""task + retrieved hits → a context bundle: exemplars, warnings, validation steps, prompts.

Every piece is labelled with its record id so the answer can cite it. The bundle is fitted to a
budget measured in the target model's tokens when a tokenizer is known (characters otherwise) by
cutting, lowest-ranked first: a piece is first condensed to its instruction's head and its
response's steps and checks, then its last lines go; only when every piece is down to one line
does the lowest-ranked piece go, and the best-ranked never does (its words are cut instead), so
a bundle built from hits is never empty.
"""

from __future__ import annotations

import re
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
# forgets to (benchmarks/replay.py; docs/replay.md).
SOURCES_CUE = "Sources: ["
Counter = Callable[[str], int]
HEAD_CHARS = 200  # what a condensed piece keeps of its instruction
STEP_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|(?:verify|check|assert|ensure|confirm)\b)", re.I)


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
    pieces = sorted(exemplars + warnings, key=lambda p: p.rank)
    steps = _steps([h for h in hits if h.id in {p.id for p in pieces}])
    condensed: list[str] = []
    while True:
        kept = {p.id for p in pieces}
        dropped = [p.id for p in sorted(exemplars + warnings, key=lambda p: -p.rank)]
        dropped = [pid for pid in dropped if pid not in kept]
        steps = [s for s in steps if s.id in kept]
        bundle = _render(task, pieces, steps, budget, unit, dropped, condensed)
        used = max(measure(_chat_text(bundle)), measure(bundle.prompt))
        shorter = _cut_one(pieces, condensed) if used > budget else None
        if shorter is None:  # fits, or nothing is left to cut (the task alone is over budget)
            return bundle.model_copy(update={"used": used})
        pieces = shorter


def _cut_one(pieces: list[BundlePiece], condensed: list[str]) -> list[BundlePiece] | None:
    """``pieces`` one cut shorter, lowest-ranked first: condense one, else drop the last line of
    one, else drop the lowest-ranked piece (never the best), else halve the best one's words.
    None when nothing is left to cut."""
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].rank)
    for i in order:
        if pieces[i].id not in condensed:
            condensed.append(pieces[i].id)
            return _replaced(pieces, i, _condensed(pieces[i]))
    for i in order:
        lines = pieces[i].response.splitlines()
        if len(lines) > 1:
            return _replaced(pieces, i, _with(pieces[i], response="\n".join(lines[:-1])))
    if len(pieces) > 1:
        return [p for j, p in enumerate(pieces) if j != order[0]]
    if not pieces:
        return None
    best = pieces[0]
    for name in ("response", "instruction"):
        words = getattr(best, name).split()
        if len(words) > 1:
            return [_with(best, **{name: " ".join(words[: len(words) // 2])})]
    return None


def _with(piece: BundlePiece, **changes: str) -> BundlePiece:
    return piece.model_copy(update=changes)


def _replaced(pieces: list[BundlePiece], index: int, piece: BundlePiece) -> list[BundlePiece]:
    return [piece if j == index else p for j, p in enumerate(pieces)]


def _condensed(piece: BundlePiece) -> BundlePiece:
    """The piece's instruction head and the steps and checks of its response."""
    lines = [line.strip() for line in piece.response.splitlines() if STEP_LINE.match(line)]
    response = "\n".join(lines) or "\n".join(piece.response.splitlines()[:2])
    head = piece.instruction
    if len(head) > HEAD_CHARS:
        head = head[:HEAD_CHARS].rsplit(" ", 1)[0] + " …"
    return piece.model_copy(update={"instruction": head, "response": response})


def _piece(hit: SearchHit, rank: int, kind: str) -> BundlePiece:
    instruction, _, response = hit.text.partition("\n\n")
    return BundlePiece(
        id=hit.id,
        kind=kind,
        rank=rank,
        category=hit.category,
        instruction=instruction.strip(),
        response=response.strip(),
        relevance=hit.relevance,
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
    pieces: list[BundlePiece],
    steps: list[ValidationStep],
    budget: int,
    unit: str,
    dropped: list[str],
    condensed: list[str],
) -> Bundle:
    exemplars = [p for p in pieces if p.kind == "exemplar"]
    warnings = [p for p in pieces if p.kind == "warning"]
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
    # only warnings cleared the threshold: they are the demos. The most relevant comes last,
    # nearest the task: a base model most often takes its source from the last demonstration
    shown = sorted(exemplars or warnings, key=lambda p: p.relevance or 0.0)
    prompt = _demonstrated(task, shown) + (SOURCES_CUE if shown else "Answer:")
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
        trimmed=list(dropped),
        condensed=[c for c in condensed if c in {p.id for p in pieces}],
    )


def demonstrations(bundle: Bundle) -> list[BundlePiece]:
    """The pieces the completion prompt demonstrates (and may cite): the exemplars, else the
    warnings, the most relevant last."""
    return sorted(bundle.exemplars or bundle.warnings, key=lambda p: p.relevance or 0.0)


def answer_prompt(bundle: Bundle, cited: str) -> str:
    """The completion prompt for the answer once the model has cited ``cited``: the same
    demonstrations with the cited one moved last, then the task, its source and ``Answer:``.

    A base model copies the demonstration nearest the task far more often than the one it
    cited; with the cited one nearest, the answer it writes is the playbook it named. When the
    cited one already comes last this is ``bundle.prompt`` continued (llama.cpp reuses the
    evaluated prefix)."""
    shown = demonstrations(bundle)
    shown.sort(key=lambda p: p.id == cited)  # stable: the others keep their order
    return f"{_demonstrated(bundle.task, shown)}{SOURCES_CUE}{cited}]\nAnswer:"


def _demonstrated(task: str, shown: list[BundlePiece]) -> str:
    demos = "".join(
        f"Task: {p.instruction}\n{SOURCES_CUE}{p.id}]\nAnswer: {p.response}\n\n" for p in shown
    )
    return f"{demos}Task: {task}\n"


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
