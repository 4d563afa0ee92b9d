"""Score the retriever on a BEIR-format dataset: nDCG@10, Recall@10/100, MRR@10 and latency.

The corpus goes through the real store (``PlaybookStore.build`` in a throwaway folder) and the
real ``Retriever``, so the numbers are those of ``distill index``/``distill serve``. Mode
``jaccard`` is the old seed's baseline (token-set overlap, pure Python), kept for the record.

>>> dataset = load_beir(Path("/data/scifact"), "test")          # doctest: +SKIP
>>> report = run_retrieval_eval(dataset, make_embedder("hash-384"),
...                             [RetrievalSetting("fts", "fts")])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from distill.clock import utc_now
from distill.errors import DistillError, InputMissingError
from distill.eval.metrics import mean_metrics
from distill.index.embedders import Embedder, Progress, TimedEmbedder
from distill.index.search import DEFAULT_ALPHA, DEFAULT_FUSION, Fusion, Mode, Retriever
from distill.index.store import PlaybookStore
from distill.jsonio import canonical_hash, iter_json_objects, refuse_bad_lines
from distill.schemas import Category, Provenance, RagSample

EvalMode = Literal["fts", "vector", "hybrid", "jaccard"]
ALL_MODES: tuple[EvalMode, ...] = ("fts", "vector", "hybrid", "jaccard")
TOP_K = 100
BEIR_LINE_BYTES = 16 << 20  # a BEIR row is one passage or query; this only bounds memory
# (phase, done, total); phase is "embed" or a setting's name.
EvalProgress = Callable[[str, int, int], None]
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class BeirDoc:
    id: str
    title: str
    text: str
    line: int
    sha256: str


@dataclass(frozen=True)
class BeirDataset:
    """A corpus, its queries, and the relevance judgements of one split."""

    name: str
    path: Path
    split: str
    docs: list[BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def limited(self, count: int | None) -> BeirDataset:
        """The first ``count`` judged queries (in qrels file order); all when None."""
        if count is None:
            return self
        kept = dict(list(self.qrels.items())[: max(count, 0)])
        return replace(self, qrels=kept)


@dataclass(frozen=True)
class RetrievalSetting:
    """One way to search: a mode, and for hybrid the fusion and vector weight."""

    name: str
    mode: EvalMode
    fusion: Fusion = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA


@dataclass
class SettingResult:
    setting: RetrievalSetting
    metrics: dict[str, float]
    latencies_ms: list[float]
    failed: dict[str, str] = field(default_factory=dict)  # query id -> error, scored as 0

    def to_dict(self) -> dict[str, Any]:
        p50, p95 = np.percentile(self.latencies_ms, [50, 95]) if self.latencies_ms else (0.0, 0.0)
        out: dict[str, Any] = {name: round(value, 4) for name, value in self.metrics.items()}
        out |= {
            "p50_ms": round(float(p50), 2),
            "p95_ms": round(float(p95), 2),
            "failed_queries": len(self.failed),
        }
        if self.setting.mode == "hybrid":
            out |= {"fusion": self.setting.fusion, "alpha": self.setting.alpha}
        return out


@dataclass
class RetrievalReport:
    dataset: str
    split: str
    queries: int
    docs: int
    embedder: str | None
    embed_docs_per_s: float | None
    results: list[SettingResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "queries": self.queries,
            "docs": self.docs,
            "embedder": self.embedder,
            "embed_docs_per_s": (
                None if self.embed_docs_per_s is None else round(self.embed_docs_per_s, 1)
            ),
            "modes": {r.setting.name: r.to_dict() for r in self.results},
        }


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputMissingError(
            f"no {path.name} at {path}",
            hint="point --beir at a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)",
        )
    beir = 'BEIR rows look like {"_id": ..., "text": ...}'
    for raw, row in iter_json_objects(path, BEIR_LINE_BYTES, on_bad=refuse_bad_lines(path, beir)):
        if "_id" not in row:
            raise DistillError(f"{path}:{raw.line_no} has no _id", hint=beir)
        yield raw.line_no, row


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id, corpus-id, score`` rows after one header line, tab separated."""
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.tsv"))
        raise InputMissingError(
            f"no qrels at {path}", hint=f"splits here: {', '.join(available) or 'none'}"
        )
    qrels: dict[str, dict[str, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for line_no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            query_id, doc_id, score = parts[0], parts[1], int(parts[2])
        except (IndexError, ValueError) as err:
            raise DistillError(
                f"{path}:{line_no}: expected query-id, corpus-id, score",
                hint="qrels are tab separated with a header line",
            ) from err
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``path``.

    Only queries with judgements in the split are kept; every one must be in queries.jsonl.
    """
    docs = [
        BeirDoc(
            id=str(row["_id"]),
            title=str(row.get("title") or ""),
            text=str(row.get("text") or ""),
            line=line_no,
            sha256=canonical_hash(row),
        )
        for line_no, row in _read_jsonl(path / "corpus.jsonl")
    ]
    all_queries = {
        str(row["_id"]): str(row.get("text") or "")
        for _, row in _read_jsonl(path / "queries.jsonl")
    }
    qrels = read_qrels(path / "qrels" / f"{split}.tsv")
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise DistillError(
            f"{len(missing)} judged queries are not in queries.jsonl (first: {missing[0]})",
            hint="is the dataset complete?",
        )
    queries = {query_id: all_queries[query_id] for query_id in qrels}
    return BeirDataset(
        name=path.resolve().name, path=path, split=split, docs=docs, queries=queries, qrels=qrels
    )


def beir_sample(doc: BeirDoc, *, source_file: str, recorded_at: str) -> RagSample:
    """A corpus document as the playbook the store indexes (title + text is what is embedded)."""
    text = f"{doc.title}\n\n{doc.text}".strip()
    return RagSample(
        id=doc.id,
        title=doc.title,
        text=text or doc.id,
        instruction=doc.title,
        response=doc.text or doc.title or doc.id,
        category=Category.accepted,
        source="beir",
        task_id=None,
        file_paths=[],
        validation_steps=[],
        provenance=Provenance(
            stream="beir",
            source_file=source_file,
            line=doc.line,
            sig_hash=doc.sha256,
            source_run_id=f"beir:{Path(source_file).stem}",
            recorded_at=recorded_at,
        ),
    )


class JaccardIndex:
    """The seed's baseline: |query ∩ doc| / |query ∪ doc| over lowercased \\w+ token sets."""

    def __init__(self, docs: Sequence[BeirDoc]) -> None:
        self._docs = [(doc.id, _tokens(f"{doc.title}\n\n{doc.text}")) for doc in docs]

    def search(self, query: str, top_k: int = TOP_K) -> list[str]:
        words = _tokens(query)
        scored = []
        for doc_id, tokens in self._docs:
            common = len(words & tokens)
            if common:
                scored.append((common / len(words | tokens), doc_id))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [doc_id for _, doc_id in scored[:top_k]]


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text.lower()))


@dataclass
class EvalIndex:
    """The corpus indexed once, queried with as many settings as wanted."""

    docs: int
    retriever: Retriever | None
    jaccard: JaccardIndex
    embedder: str | None
    embed_docs_per_s: float | None

    def search(self, setting: RetrievalSetting, query: str) -> list[str]:
        if setting.mode == "jaccard":
            return self.jaccard.search(query, TOP_K)
        if self.retriever is None:
            raise DistillError(f"setting {setting.name} needs the index, built without one")
        mode: Mode = setting.mode
        hits = self.retriever.search(
            query, mode=mode, top_k=TOP_K, fusion=setting.fusion, alpha=setting.alpha
        )
        return [hit.id for hit in hits]


def build_eval_index(
    docs: Sequence[BeirDoc],
    embedder: Embedder | None,
    folder: Path,
    *,
    source_file: str,
    progress: EvalProgress | None = None,
) -> EvalIndex:
    """Index ``docs`` in ``folder`` with the real store (skipped when ``embedder`` is None)."""
    jaccard = JaccardIndex(docs)
    if embedder is None:
        return EvalIndex(len(docs), None, jaccard, None, None)
    recorded_at = utc_now()
    samples = [beir_sample(doc, source_file=source_file, recorded_at=recorded_at) for doc in docs]
    timed = TimedEmbedder(embedder)
    store = PlaybookStore(str(folder))
    on_embed: Progress | None = None
    if progress is not None:
        report = progress

        def on_embed(done: int, total: int) -> None:
            report("embed", done, total)

    store.build(samples, timed, progress=on_embed)
    rate = len(docs) / timed.seconds if timed.seconds > 0 else None
    return EvalIndex(len(docs), Retriever(store, embedder), jaccard, embedder.name, rate)


def evaluate_setting(
    index: EvalIndex,
    dataset: BeirDataset,
    setting: RetrievalSetting,
    *,
    progress: EvalProgress | None = None,
) -> SettingResult:
    """Run every judged query of ``dataset`` (top 100) and score the rankings."""
    runs: dict[str, list[str]] = {}
    latencies: list[float] = []
    failed: dict[str, str] = {}
    total = len(dataset.qrels)
    for done, query_id in enumerate(dataset.qrels, 1):
        start = time.perf_counter()
        try:
            runs[query_id] = index.search(setting, dataset.queries[query_id])
        except (ValueError, DistillError) as err:  # e.g. LanceDB refusing a quoted phrase
            failed[query_id] = f"{type(err).__name__}: {err}"
            runs[query_id] = []
        latencies.append((time.perf_counter() - start) * 1000)
        if progress is not None and (done % 25 == 0 or done == total):
            progress(setting.name, done, total)
    return SettingResult(setting, mean_metrics(runs, dataset.qrels), latencies, failed)


def settings_for(
    modes: Sequence[EvalMode], fusion: Fusion = DEFAULT_FUSION, alpha: float = DEFAULT_ALPHA
) -> list[RetrievalSetting]:
    return [RetrievalSetting(mode, mode, fusion, alpha) for mode in modes]


@contextlib.contextmanager
def pinned_blas_threads() -> Iterator[None]:
    """One BLAS thread while torch runs in the same process: on a few cores the two thread pools
    fight (exact search was 7x slower on 2 cores)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - threadpoolctl comes with sentence-transformers
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_retrieval_eval(
    dataset: BeirDataset,
    embedder: Embedder | None,
    settings: Sequence[RetrievalSetting],
    *,
    progress: EvalProgress | None = None,
) -> RetrievalReport:
    """Index the corpus in a temporary folder, then evaluate each setting on it."""
    needs_index = any(setting.mode != "jaccard" for setting in settings)
    with tempfile.TemporaryDirectory(prefix="distill-eval-") as tmp, pinned_blas_threads():
        index = build_eval_index(
            dataset.docs,
            embedder if needs_index else None,
            Path(tmp),
            source_file=str(dataset.path / "corpus.jsonl"),
            progress=progress,
        )
        results = [
            evaluate_setting(index, dataset, setting, progress=progress) for setting in settings
        ]
    return RetrievalReport(
        dataset=dataset.name,
        split=dataset.split,
        queries=len(dataset.qrels),
        docs=len(dataset.docs),
        embedder=index.embedder,
        embed_docs_per_s=index.embed_docs_per_s,
        results=results,
    )
