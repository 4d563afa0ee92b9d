"""An absolute relevance signal for a (query, playbook) pair, unlike the fused score.

The fused hybrid score is min-max normalised per query, so the best hit of any query scores near
1, even when the corpus has nothing on the subject. Relevance instead combines two signals that
mean the same thing for every query:

- ``cosine``: the embedder's query–playbook cosine (MiniLM's vectors are normalised);
- ``bm25``: the playbook's BM25 score for the query's content terms, divided by what a
  playbook of average length holding every query term once would score (1.0, clipped), with
  document frequencies from the whole index. A query term the corpus has never seen weighs
  the most and counts against every playbook.

``relevance = W_COSINE * max(cosine, 0) + (1 - W_COSINE) * bm25``; the weight is the ratio of
the two coefficients of a logistic regression of "this hit is one of the task's relevant
playbooks" on the two signals, fitted on the sample corpus's labelled tasks (docs/replay.md,
"How the threshold was chosen"). The threshold that turns relevance into "the team has done this" is
one setting: ``--min-relevance`` (``DEFAULT_MIN_RELEVANCE``).

Document frequencies live beside the table in ``playbooks.terms.json``, written with each
published version (``TermStats``), so a replay never scans the corpus.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.jsonio import write_bytes_atomic

W_COSINE = 0.7
DEFAULT_MIN_RELEVANCE = 0.36
BM25_K1 = 1.2
BM25_B = 0.75
_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either etc few for from further get gets got had has have having he her here hers him his
    how i if in into is it its itself just let lets like make makes made me more most must my
    need needs no nor not now of off on once one ones only or other our ours out over own per
    same she should so some such than that the their theirs them then there these they this
    those through thing things to too under until up upon us use used using very via want
    wants was way ways we were what when where whether which while who whom why will with
    without would yet you your yours""".split()
)


@functools.lru_cache(maxsize=1 << 16)  # words recur: a bounded cache of short strings
def _stem(word: str) -> str:
    """A light suffix stripper: plurals and -ing/-ed forms meet their stem."""
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith("ss") and len(word) >= 4:
        return word[:-1]
    return word


def content_terms(text: str) -> list[str]:
    """The text's content words, lowercased, ASCII-folded, stop words out, lightly stemmed."""
    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [_stem(w) for w in _WORD.findall(folded) if len(w) > 1 and w not in STOP_WORDS]


@dataclass
class TermStats:
    """Document frequencies of content terms over the indexed playbooks, for BM25."""

    docs: int = 0
    terms: int = 0  # content terms over all documents, for the average length
    df: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStats:
        stats = cls()
        stats.add(texts)
        return stats

    def add(self, texts: Iterable[str], sign: int = 1) -> None:
        for text in texts:
            words = content_terms(text)
            self.docs += sign
            self.terms += sign * len(words)
            self.df.update(dict.fromkeys(set(words), sign))
        self.df = +self.df  # drops terms whose count fell to zero

    def remove(self, texts: Iterable[str]) -> None:
        self.add(texts, sign=-1)

    @property
    def average_length(self) -> float:
        return self.terms / self.docs if self.docs > 0 else 1.0

    def idf(self, term: str) -> float:
        n = self.df.get(term, 0)
        return math.log(1.0 + (max(self.docs, 0) - n + 0.5) / (n + 0.5))


class TermStatsFile(BaseModel):
    """``playbooks.terms.json``: the term statistics of one published table version."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["index_terms.v1"] = Field(default="index_terms.v1", alias="schema")
    version: int
    docs: int
    terms: int
    df: dict[str, int]

    def stats(self) -> TermStats:
        return TermStats(self.docs, self.terms, Counter(self.df))

    @classmethod
    def of(cls, stats: TermStats, version: int) -> TermStatsFile:
        df = dict(sorted(stats.df.items()))
        return cls(version=version, docs=stats.docs, terms=stats.terms, df=df)


def bm25_coverage(query: Iterable[str], document: Iterable[str], stats: TermStats) -> float:
    """BM25 of ``document`` for the distinct ``query`` terms, over the score of an average-length
    document holding each of them once (so 1.0 means fully covered), clipped to 0..1."""
    wanted = set(query)
    if not wanted:
        return 0.0
    counts = Counter(document)
    length = sum(counts.values())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / stats.average_length)
    score = total = 0.0
    for term in wanted:
        idf = stats.idf(term)
        total += idf
        tf = counts.get(term, 0)
        if tf:
            score += idf * tf * (BM25_K1 + 1) / (tf + norm)
    return min(1.0, score / total) if total > 0 else 0.0


def combine(cosine: float, bm25: float) -> float:
    """The relevance of a hit: the weighted mean of its cosine (floored at 0) and BM25 coverage."""
    return round(W_COSINE * max(cosine, 0.0) + (1.0 - W_COSINE) * bm25, 4)


TERMS_FILE = "playbooks.terms.json"


def read_term_stats(path: Path, version: int) -> TermStats | None:
    """The statistics written with table ``version``; None when missing, stale or unreadable
    (an index built before they existed: the caller counts them from the table)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return decode_term_stats(raw, version)


def decode_term_stats(raw: bytes | None, version: int) -> TermStats | None:
    """:func:`read_term_stats` of a file's bytes (None: there is no file)."""
    if raw is None:
        return None
    try:
        saved = TermStatsFile.model_validate_json(raw)
    except ValidationError:
        return None
    return saved.stats() if saved.version == version else None


def write_term_stats(path: Path, stats: TermStats, version: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode_term_stats(stats, version))


def encode_term_stats(stats: TermStats, version: int) -> bytes:
    """The bytes of ``playbooks.terms.json`` for table ``version``."""
    body = TermStatsFile.of(stats, version).model_dump(mode="json", by_alias=True)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
