"""The gate's semantic checks: deterministic code over words, never a model.

- ``relevant_source``: every cited playbook clears the relevance threshold for this task, and
  one the answer nearly copies clears it by :data:`COPY_MARGIN` (a copy is that playbook's
  answer: grounded here only if the playbook is clearly about this task); and when the team's
  own run for this very task was rejected (its instruction holds nearly all of the task), a
  playbook of another task does not ground the answer (:data:`ATTEMPT_MARGIN`);
- ``supported``: most of the answer's sentences are made of what the cited playbooks say
  (IDF-weighted share of a sentence's content terms found in the cited text);
- ``cites_only_retrieved``: no ``<stream>:<id>``-shaped citation of something not retrieved;
- ``avoids_rejected``: no sentence repeats an approach the team rejected for the task, unless
  the cited playbooks say it too;
- ``no_injection``: no instruction addressed to a model ("ignore previous instructions…").

Also :func:`copy_of`: the cited playbook an answer nearly copies (a reuse, not a new playbook).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from distill.index.relevance import TermStats, content_terms
from distill.injection import injection_phrases
from distill.replay.gate import GatePolicy, cited_ids, run_gate
from distill.replay.rejected import RejectedRun, share_of_task
from distill.schemas import Bundle, GateCheck, GateReport

SEMANTIC_CHECKS = (
    "relevant_source",
    "supported",
    "cites_only_retrieved",
    "avoids_rejected",
    "no_injection",
)
SENTENCE_SUPPORT = 0.6  # share of a sentence's (IDF-weighted) terms found in the cited text
SUPPORTED_SHARE = 0.7  # share of the answer's sentences that must be supported
REPEAT_OVERLAP = 0.7  # share of a rejected sentence's terms an answer sentence repeats
MIN_SENTENCE_TERMS = 3
MIN_APPROACH_TERMS = 5  # a rejected sentence shorter than this (once paths are out) is no approach
COPY_SHARE = 0.8  # share of the answer's term trigrams found in one cited playbook
COPY_MARGIN = 0.09
"""How far above the threshold a playbook the answer nearly copies must be. Chosen on the
sample tasks' calibration half (odd task numbers), int8 MiniLM, threshold 0.36: the copies that
passed for in-scope tasks cited playbooks of relevance 0.378, then ≥ 0.498; the out-of-scope one
0.411. 0.45 is the middle of that gap, and the lone in-scope copy below it is the price."""
ATTEMPT_MARGIN = 0.2
"""How much less of the task than the team's rejected run of it (which holds at least
``TASK_MATCH`` of its content terms) every cited playbook must hold to be about another task."""
# <stream>:<id>, the shape of every record id (audits:AUD-1, replay_runs:RUN-0002, …)
ID_SHAPE = re.compile(
    r"(?<![\w/.:@-])(\[)?([a-z][a-z0-9_]*[a-z0-9]):([A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?)(?![\w-])"
)
_SOURCES_LINE = re.compile(r"^\s*sources?\s*:.*$", re.IGNORECASE | re.MULTILINE)
_SENTENCE = re.compile(r"\n+|(?<=[.!?;])\s+")
# file paths: accepted and rejected runs of one task name the same files, so they say nothing
# about the approach
_PATHISH = re.compile(r"\S*/\S*|\b[\w-]+\.(?:py|sql|md|ya?ml|json|toml|txt|js|ts|go|rs|rb)\b")


@dataclass(frozen=True)
class GateEvidence:
    """What the semantic checks compare an answer against: the retrieved playbooks (text and
    relevance, in retrieval order), the threshold, the task's rejected runs, term weights."""

    texts: Mapping[str, str] = field(default_factory=dict)
    relevance: Mapping[str, float | None] = field(default_factory=dict)
    min_relevance: float = 0.0
    rejected: Sequence[RejectedRun] = ()
    terms: TermStats | None = None
    streams: frozenset[str] = frozenset()  # stream names an id may start with
    task_terms: frozenset[str] = frozenset()  # the task's content terms

    @property
    def retrieved(self) -> list[str]:
        return list(self.texts)


def semantic_checks(answer: str, cited: list[str], evidence: GateEvidence) -> list[GateCheck]:
    """The five semantic checks of ``answer``, which cites ``cited`` (retrieved ids)."""
    body = _SOURCES_LINE.sub("", answer)
    return [
        _relevant_source(body, cited, evidence),
        _supported(body, cited, evidence),
        _cites_only_retrieved(answer, evidence),
        _avoids_rejected(body, cited, evidence),
        _no_injection(answer),
    ]


def _relevant_source(body: str, cited: list[str], evidence: GateEvidence) -> GateCheck:
    name = "relevant_source"
    if not evidence.retrieved:
        return GateCheck(name=name, passed=True, detail="no retrieval: nothing cited")
    low = {
        cid: evidence.relevance.get(cid)
        for cid in cited
        if (evidence.relevance.get(cid) or 0.0) < evidence.min_relevance
    }
    if low:
        shown = ", ".join(f"{cid} {_score(value)}" for cid, value in low.items())
        return GateCheck(
            name=name, passed=False, detail=f"below {evidence.min_relevance:.2f}: {shown}"
        )
    attempt = _own_attempt(cited, evidence)
    if attempt is not None:
        return GateCheck(name=name, passed=False, detail=attempt)
    copied = copy_of(body, cited, evidence.texts)
    bar = evidence.min_relevance + COPY_MARGIN
    relevance = evidence.relevance.get(copied) if copied else None
    if copied and (relevance or 0.0) < bar:
        detail = (
            f"copies {copied} {_score(relevance)}, below {bar:.2f}: a playbook copied whole must "
            "be clearly about this task"
        )
        return GateCheck(name=name, passed=False, detail=detail)
    return GateCheck(
        name=name, passed=True, detail=f"{len(cited)} cited, each ≥ {evidence.min_relevance:.2f}"
    )


def _own_attempt(cited: list[str], evidence: GateEvidence) -> str | None:
    """Why the cited playbooks do not ground the answer when the team's own run for this task
    was rejected and every one of them holds clearly less of the task; else None."""
    attempts = [run for run in evidence.rejected if run.covers is not None]
    if not attempts or not evidence.task_terms:
        return None
    own = max(attempts, key=lambda run: run.covers or 0.0)
    held = {cid: share_of_task(evidence.task_terms, evidence.texts.get(cid)) for cid in cited}
    best = max(held.values(), default=0.0)
    if best > (own.covers or 0.0) - ATTEMPT_MARGIN:
        return None
    shown = ", ".join(f"{cid} {share:.0%}" for cid, share in held.items()) or "nothing cited"
    return (
        f"the team's own run for this task, {own.id}, was rejected (it states {own.covers:.0%} "
        f"of the task; {shown}): a playbook of another task does not ground it"
    )


def _supported(body: str, cited: list[str], evidence: GateEvidence) -> GateCheck:
    name = "supported"
    if not evidence.retrieved:
        return GateCheck(name=name, passed=True, detail="no retrieval: nothing to compare with")
    source = _terms_of(evidence.texts[cid] for cid in cited)
    sentences = _sentences(body)
    if not sentences:
        return GateCheck(name=name, passed=True, detail="no sentence long enough to judge")
    weak = [s for s in sentences if support(s, source, evidence.terms) < SENTENCE_SUPPORT]
    share = 1 - len(weak) / len(sentences)
    shown = ", ".join(cited) or "nothing cited"
    detail = f"{len(sentences) - len(weak)}/{len(sentences)} sentences supported by {shown}"
    if weak:
        detail += f"; e.g. {_quote(weak[0])}"
    return GateCheck(name=name, passed=share >= SUPPORTED_SHARE, detail=detail)


def _cites_only_retrieved(answer: str, evidence: GateEvidence) -> GateCheck:
    retrieved = set(evidence.retrieved)
    streams = evidence.streams | {rid.partition(":")[0] for rid in retrieved}
    foreign = []
    for match in ID_SHAPE.finditer(answer):
        token = f"{match.group(2)}:{match.group(3)}"
        bracketed = match.group(1) is not None
        if (bracketed or match.group(2) in streams) and token not in retrieved:
            foreign.append(token)
    return GateCheck(
        name="cites_only_retrieved",
        passed=not foreign,
        detail=f"not retrieved: {sorted(set(foreign))[:5]}"
        if foreign
        else "every id in the answer was retrieved",
    )


def _avoids_rejected(body: str, cited: list[str], evidence: GateEvidence) -> GateCheck:
    name = "avoids_rejected"
    if not evidence.rejected:
        return GateCheck(name=name, passed=True, detail="no rejected run of this task")
    source = _terms_of(evidence.texts[cid] for cid in cited)
    approaches = [
        (run, rejected)
        for run in evidence.rejected
        for rejected in _sentences(_PATHISH.sub(" ", run.text))
        if len(set(rejected)) >= MIN_APPROACH_TERMS
    ]
    for sentence in _sentences(_PATHISH.sub(" ", body)):
        if support(sentence, source, evidence.terms) >= SENTENCE_SUPPORT:
            continue  # the accepted playbooks say it too
        words = set(sentence)
        for run, rejected in approaches:
            if len(words & set(rejected)) / len(set(rejected)) >= REPEAT_OVERLAP:
                return GateCheck(
                    name=name,
                    passed=False,
                    detail=f"repeats {_quote(rejected)} of {run.id} (rejected)",
                )
    count = len(evidence.rejected)
    return GateCheck(name=name, passed=True, detail=f"repeats none of {count} rejected run(s)")


def _no_injection(answer: str) -> GateCheck:
    found = injection_phrases(answer)
    return GateCheck(
        name="no_injection",
        passed=not found,
        detail=f"instructions to a model: {found[:3]}" if found else "none found",
    )


def support(sentence: Sequence[str], source: set[str], terms: TermStats | None) -> float:
    """The share of ``sentence``'s distinct terms found in ``source``, weighted by IDF."""
    distinct = set(sentence)
    weight = {t: terms.idf(t) if terms is not None else 1.0 for t in distinct}
    total = sum(weight.values())
    return sum(weight[t] for t in distinct if t in source) / total if total > 0 else 1.0


def copy_of(answer: str, cited: list[str], texts: Mapping[str, str]) -> str | None:
    """The cited playbook that ``answer`` nearly copies (most of its term trigrams are there)."""
    grams = _trigrams(content_terms(_SOURCES_LINE.sub("", answer)))
    if not grams:
        return None
    for cid in cited:
        if len(grams & _trigrams(content_terms(texts.get(cid, "")))) / len(grams) >= COPY_SHARE:
            return cid
    return None


def _sentences(text: str) -> list[list[str]]:
    """Sentences (lines or ``. `` ends) as content terms, the short ones left out."""
    parts = (content_terms(ID_SHAPE.sub(" ", part)) for part in _SENTENCE.split(text))
    return [terms for terms in parts if len(terms) >= MIN_SENTENCE_TERMS]


def _terms_of(texts: Iterable[str]) -> set[str]:
    return {term for text in texts for term in content_terms(text)}


def _trigrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _quote(terms: list[str]) -> str:
    text = " ".join(terms)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _score(value: float | None) -> str:
    return "(no relevance)" if value is None else f"({value:.2f})"


def gate_answer(
    answer: str, bundle: Bundle, evidence: GateEvidence, policy: GatePolicy | None = None
) -> GateReport:
    """The whole gate: the structural checks of :func:`run_gate`, then the semantic ones."""
    structural = run_gate(answer, bundle, evidence.retrieved, policy)
    text = answer.strip()
    checks = structural.checks + semantic_checks(
        text, cited_ids(text, evidence.retrieved), evidence
    )
    return GateReport(passed=all(check.passed for check in checks), checks=checks)


def semantic_passed(report: GateReport | None) -> bool | None:
    """Whether every semantic check of ``report`` passed; None without a report or checks."""
    if report is None:
        return None
    found = [check.passed for check in report.checks if check.name in SEMANTIC_CHECKS]
    return all(found) if len(found) == len(SEMANTIC_CHECKS) else None
