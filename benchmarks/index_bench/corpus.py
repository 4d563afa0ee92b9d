"""Synthetic playbooks and queries, seeded: every run sees the same texts.

A playbook is ``instruction\\n\\nresponse`` of 200-800 characters over a ~3 000-word project
vocabulary with a long tail (``vocabulary.toml``), written as a ``RagSample`` as ``distill
export rag`` writes one. Queries are half known-item (4-7 consecutive words of a playbook), half
topical phrases.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from benchmarks.index_bench.common import RECORDED_AT
from distill.schemas import RagSample
from distill.schemas.common import Category, Provenance

VOCABULARY = Path(__file__).resolve().parent / "vocabulary.toml"
MODULE_PARTS = (
    "acct ledger sync fanout relay shard tenant quota token cursor batch audit flag hook "
    "queue lock cache store index report export import render notify billing invoice "
    "refund charge payout ledger session oauth scope policy role grant"
).split()
TOPICAL = (
    "how to fix {problem} in {component}",
    "{problem} {condition}",
    "{component} {problem} {module}",
    "{verb} {noun} {component}",
    "{action}",
)


@cache
def vocabulary() -> dict[str, list[str]]:
    with open(VOCABULARY, "rb") as handle:
        return tomllib.load(handle)


@dataclass
class Corpus:
    samples: list[RagSample]
    modules: list[str]


def _module_names(rng: random.Random, count: int) -> list[str]:
    """Project-specific identifiers (a long tail of rare words, as real code has)."""
    names: set[str] = set()
    while len(names) < count:
        names.add(f"{rng.choice(MODULE_PARTS)}_{rng.choice(MODULE_PARTS)}{rng.randrange(100)}")
    return sorted(names)


def _fill(rng: random.Random, modules: Sequence[str]) -> dict[str, str]:
    words = vocabulary()
    module = rng.choice(modules)
    return {
        "problem": rng.choice(words["problems"]),
        "component": rng.choice(words["components"]),
        "component2": rng.choice(words["components"]),
        "condition": rng.choice(words["conditions"]),
        "action": rng.choice(words["actions"]),
        "tool": rng.choice(words["tools"]),
        "verb": rng.choice(words["verbs"]),
        "noun": rng.choice(words["nouns"]),
        "adjective": rng.choice(words["adjectives"]),
        "module": module,
        "path": f"{rng.choice(words['dirs'])}/{module}.py",
        "n1": str(rng.randrange(200, 5000)),
        "n2": str(rng.randrange(20, 200)),
        "n3": str(rng.randrange(2, 90)),
    }


def _text(
    rng: random.Random, modules: Sequence[str], lo: int = 200, hi: int = 800
) -> tuple[str, str, list[str], list[str]]:
    """instruction, response, file_paths, validation_steps; len(instruction\\n\\nresponse) in
    [lo, hi]."""
    f = _fill(rng, modules)
    instruction = (
        f"{f['verb'].capitalize()} the {f['problem']} in the {f['component']} "
        f"({f['module']}) {f['condition']}."
    )
    target = rng.randint(lo, hi)
    sentences: list[str] = []
    paths = [f["path"]]
    steps: list[str] = []
    while len(instruction) + 2 + sum(len(s) + 1 for s in sentences) < target:
        g = _fill(rng, modules)
        sentence = rng.choice(vocabulary()["filler"]).format(**g)
        sentences.append(sentence)
        if "{path}" in sentence or rng.random() < 0.2:
            paths.append(g["path"])
        if sentence.startswith("Verified"):
            steps.append(f"{g['tool']} {g['path']}")
    response = " ".join(sentences)
    budget = hi - len(instruction) - 3  # the loop reached ``target`` ≥ lo; cap at ``hi``
    if len(response) > budget:  # cut at a word boundary, then end the sentence
        cut = response.rfind(" ", 0, budget)
        response = response[: cut if cut > 0 else budget].rstrip(" ,;:") + "."
    return instruction, response, sorted(set(paths)), steps or [f"{f['tool']} {f['path']}"]


def _sample(
    i: int, instruction: str, response: str, paths: list[str], steps: list[str], rng: random.Random
) -> RagSample:
    text = f"{instruction}\n\n{response}"
    stream = rng.choice(vocabulary()["streams"])
    return RagSample(
        id=f"pb-{i:07d}",
        title=instruction[:80],
        text=text,
        instruction=instruction,
        response=response,
        category=Category.accepted if rng.random() < 0.8 else Category.partially_accepted,
        source=stream,
        task_id=f"T-{rng.randrange(2000):04d}",
        file_paths=paths,
        validation_steps=steps,
        provenance=Provenance(
            stream=stream,
            source_file=f"data/{stream}.jsonl",
            line=i + 1,
            sig_hash=hashlib.sha256(text.encode()).hexdigest(),
            source_run_id=f"run-{i:07d}",
            recorded_at=RECORDED_AT,
        ),
    )


def generate(rows: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    modules = _module_names(rng, 3000)
    samples = [_sample(i, *_text(rng, modules), rng) for i in range(rows)]
    return Corpus(samples, modules)


def change_some(corpus: Corpus, fraction: float, seed: int) -> tuple[list[RagSample], list[str]]:
    """A copy of the corpus with ``fraction`` of the rows rewritten (new text and sig_hash)."""
    rng = random.Random(seed + 1)
    count = max(1, round(len(corpus.samples) * fraction))
    chosen = set(rng.sample(range(len(corpus.samples)), count))
    out = []
    for i, sample in enumerate(corpus.samples):
        if i in chosen:
            instruction, response, paths, steps = _text(rng, corpus.modules)
            sample = _sample(i, instruction, response, paths, steps, rng)
        out.append(sample)
    return out, sorted(corpus.samples[i].id for i in chosen)


def make_queries(corpus: Corpus, count: int, seed: int) -> list[str]:
    """Half known-item queries (4-7 consecutive words of a playbook), half topical ones."""
    rng = random.Random(seed + 2)
    queries = []
    for n in range(count):
        if n % 2 == 0:
            words = rng.choice(corpus.samples).text.split()
            length = rng.randint(4, 7)
            start = rng.randrange(max(1, len(words) - length))
            queries.append(" ".join(w.strip(".,;:()`") for w in words[start : start + length]))
        else:
            f = _fill(rng, corpus.modules)
            queries.append(rng.choice(TOPICAL).format(**f))
    return queries
