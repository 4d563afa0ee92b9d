"""Index benchmark: build rate, incremental update, query latency and ANN recall.

    python benchmarks/index.py [--rows N] [--build-rows N] [--queries Q]
                               [--out benchmarks/results/index.md] [--seed S]
                               [--ann-threshold T] [--blas-threads B] [--skip-minilm-query]
                               [--skip-large-update] [--fusion rrf|weighted] [--alpha A]
                               [--workdir DIR] [--keep]

All inputs are synthetic playbooks generated here (seeded: every run sees the same texts),
written as ``RagSample`` objects and handed to the store API (``PlaybookStore.build/update``,
``Retriever.search``) exactly as ``distill index`` does.

1. Build rate (``--build-rows``, default 2 000, real all-MiniLM-L6-v2): the full
   ``PlaybookStore.build`` against the raw ``SentenceTransformer.encode`` of the same texts in
   the same run (measured before and after the build; the mean is the reference).
   Target: build docs/s ≥ 0.85 × raw encode docs/s.
2. Incremental update on that table with 1 % of the rows changed (new text, new sig_hash):
   the IndexReport must say exactly those rows were embedded (and nothing inserted or deleted),
   and the update must take ≤ 5 % of the full build's seconds.
3. Query latency at ``--rows`` (default 100 000), the table built with the hashing embedder
   (MiniLM would need ~40 min to embed 100k texts on 2 cores): ``Retriever.search`` in vector,
   fts and hybrid mode against an in-memory baseline in the same process over the same vectors
   and texts: numpy exact cosine + bm25s, fused by ``distill.index.search.fuse`` with the same
   fusion as the LanceDB hybrid (the Retriever's default unless ``--fusion``) over the same
   candidate pool. p50/p95 over ``--queries`` queries (default 200), modes interleaved per
   query. Measured twice: with the hashing embedder embedding each query, and with MiniLM
   embedding each query (vectors still from the hashing embedder: the ranking is meaningless,
   the latency is what a MiniLM index of that size costs).
   Target: hybrid p50 ≤ 2 × baseline hybrid p50.
   A diagnosis table splits a hybrid query into its two sides (``Retriever._vector`` /
   ``_fts`` as shipped, then the same calls selecting only id + score) and times a leaner
   hybrid built from them (fusion on ids, one ``take_row_ids`` for the top rows; also with the
   two sides in two threads), checking it returns the same top ids.
4. ANN: at ≥ ``ann_threshold`` rows (default 100 000) the store builds an HNSW-SQ index.
   recall@10 of the store's vector search against numpy exact search over the same vectors,
   plus a small sweep of query-time knobs (ef, nprobes, refine_factor) to show the trade-off;
   the same index config is also trained on the MiniLM build table (``--no-minilm-ann`` skips).
   Use ``--rows 99999`` (or ``--ann-threshold``) to see the other side of the threshold.
5. Informative: an update of the ``--rows`` table with 1 % changed, split into phases.

LanceDB and the store calls are split into phases by wrapping LanceTable / connection methods
(outermost call only) while build and update run; the embedder is wrapped to time ``embed``.
Check the load average in the report: another job on a 2-core box (torch's OpenMP threads
spin-wait badly when oversubscribed) makes the build ratio meaningless.

BLAS threads: numpy's OpenBLAS is pinned to ``--blas-threads`` (default 1) with threadpoolctl
for the whole run; torch keeps its own OpenMP threads (the two fighting on 2 cores made exact
search 7× slower).

A Markdown report goes to ``--out`` and stdout; progress to stderr. Exit status 0 when every
target passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import hashlib
import os
import platform
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from machine import describe  # noqa: E402  (benchmarks/machine.py)

import distill.index.search as search_module  # noqa: E402
from distill.index import HashingEmbedder, PlaybookStore, Retriever  # noqa: E402
from distill.index.embedders import Progress  # noqa: E402
from distill.index.search import HIT_COLUMNS, RRF_K, SearchHit, fuse  # noqa: E402
from distill.index.store import DEFAULT_ANN_THRESHOLD, TABLE, IndexReport  # noqa: E402
from distill.schemas import RagSample  # noqa: E402
from distill.schemas.common import Category, Provenance  # noqa: E402

BUILD_TARGET = 0.85  # build docs/s ÷ raw encode docs/s, at least
UPDATE_TARGET = 0.05  # update seconds ÷ full build seconds, at most
UPDATE_FRACTION = 0.01
LATENCY_TARGET = 2.0  # hybrid p50 ÷ baseline hybrid p50, at most
TOP_K = 10
WARMUP_QUERIES = 10
RECORDED_AT = "2026-01-01T00:00:00Z"
# Hybrid fusion for both LanceDB and the baseline: the Retriever's default unless --fusion says
# otherwise (set in main; passed explicitly to every hybrid call so both sides always agree).
FUSE: dict[str, Any] = {
    "fusion": getattr(search_module, "DEFAULT_FUSION", "rrf"),
    "alpha": getattr(search_module, "DEFAULT_ALPHA", 0.5),
}


def _log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Synthetic playbooks
# ---------------------------------------------------------------------------------------------

VERBS = (
    "fix",
    "add",
    "refactor",
    "migrate",
    "harden",
    "speed up",
    "document",
    "remove",
    "retry",
    "cache",
    "validate",
    "paginate",
    "throttle",
    "instrument",
    "split",
    "rename",
    "debounce",
    "backfill",
    "deduplicate",
    "parallelise",
    "upgrade",
    "pin",
    "stream",
    "batch",
)
PROBLEMS = (
    "flaky test",
    "race condition",
    "memory leak",
    "timeout",
    "deadlock",
    "off-by-one error",
    "null pointer dereference",
    "slow query",
    "stale cache",
    "duplicate webhook delivery",
    "missing index",
    "unbounded retry loop",
    "broken pagination",
    "wrong timezone offset",
    "unicode decoding error",
    "expired certificate",
    "connection pool exhaustion",
    "silent data truncation",
    "lost update",
    "N+1 query",
    "panic on empty input",
    "incorrect rounding",
    "permission check bypass",
    "leaking file descriptors",
    "schema drift",
    "clock skew",
    "thundering herd",
    "hot partition",
    "zombie worker",
)
COMPONENTS = (
    "payments service",
    "billing worker",
    "auth middleware",
    "search indexer",
    "webhook relay",
    "job scheduler",
    "CSV importer",
    "notification fan-out",
    "GraphQL gateway",
    "rate limiter",
    "session store",
    "feature-flag client",
    "audit logger",
    "report exporter",
    "image resizer",
    "inventory sync",
    "ledger reconciler",
    "email renderer",
    "metrics pipeline",
    "CLI parser",
    "config loader",
    "migration runner",
    "cache warmer",
    "retry queue",
    "S3 uploader",
    "Kafka consumer",
    "Postgres adapter",
    "Redis lock",
    "OAuth callback",
    "PDF generator",
)
CONDITIONS = (
    "under load",
    "after a deploy",
    "when the queue is empty",
    "on the first request",
    "with a cold cache",
    "for large tenants",
    "behind the proxy",
    "in the nightly batch",
    "when the clock jumps",
    "with non-ASCII names",
    "across daylight saving",
    "on retries",
    "in read-only replicas",
    "with concurrent writers",
    "on ARM runners",
    "in CI only",
)
ACTIONS = (
    "wrapped the call in a transaction",
    "added exponential backoff with jitter",
    "moved the lock acquisition before the read",
    "bounded the queue at 10k items",
    "replaced the regex with a tokenizer",
    "added a composite index on (tenant_id, created_at)",
    "switched to streaming the response body",
    "normalised timestamps to UTC at the edge",
    "made the handler idempotent with a dedupe key",
    "closed the cursor in a finally block",
    "added a circuit breaker around the upstream call",
    "reduced the batch size to 500",
    "pinned the dependency to the last good release",
    "added a schema check at startup",
    "cached the token for its lifetime minus a minute",
    "used a monotonic clock for timeouts",
    "split the job into per-tenant shards",
    "escaped the identifier before interpolation",
    "replaced float math with Decimal",
    "pre-warmed the connection pool",
)
TOOLS = (
    "pytest",
    "ruff",
    "mypy",
    "cargo test",
    "go test",
    "npm test",
    "k6",
    "locust",
    "psql",
    "EXPLAIN ANALYZE",
    "py-spy",
    "valgrind",
    "strace",
    "tcpdump",
    "hypothesis",
    "tox",
)
DIRS = ("src", "lib", "app", "services", "pkg", "internal", "core", "api", "workers", "tests")
STREAMS = ("scrum_reviews", "audits", "pr_reviews", "incident_reports", "task_runs", "handoffs")
FILLER = (
    "The root cause was {problem} in {component}.",
    "Reproduced it {condition} with {tool} before changing anything.",
    "Then {action}; the {component} now recovers {condition}.",
    "Checked the logs for {problem} over the last week: none since the change.",
    "Watch out: the {component} shares a {noun} with the {component2}.",
    "A follow-up should {verb} the {noun} in {module} too.",
    "Verified with `{tool} {path}` and a manual run {condition}.",
    "Left a comment in {path} explaining why the {noun} is {adjective}.",
    "Rolled back once because of a {problem}; the second attempt {action}.",
    "Metrics: p95 dropped from {n1} ms to {n2} ms and errors from {n3} to 0 per hour.",
)
NOUNS = (
    "connection pool",
    "lock",
    "cursor",
    "token",
    "queue",
    "index",
    "buffer",
    "worker pool",
    "schema",
    "cache key",
    "feature flag",
    "cron entry",
    "dead-letter queue",
    "partition",
)
ADJECTIVES = ("bounded", "idempotent", "lazy", "sharded", "pinned", "versioned", "atomic")


def _module_names(rng: random.Random, count: int) -> list[str]:
    """Project-specific identifiers (a long tail of rare words, as real code has)."""
    parts = (
        "acct ledger sync fanout relay shard tenant quota token cursor batch audit flag hook "
        "queue lock cache store index report export import render notify billing invoice "
        "refund charge payout ledger session oauth scope policy role grant"
    ).split()
    names: set[str] = set()
    while len(names) < count:
        names.add(f"{rng.choice(parts)}_{rng.choice(parts)}{rng.randrange(100)}")
    return sorted(names)


@dataclass
class Corpus:
    samples: list[RagSample]
    modules: list[str]


def _fill(rng: random.Random, modules: Sequence[str]) -> dict[str, str]:
    module = rng.choice(modules)
    return {
        "problem": rng.choice(PROBLEMS),
        "component": rng.choice(COMPONENTS),
        "component2": rng.choice(COMPONENTS),
        "condition": rng.choice(CONDITIONS),
        "action": rng.choice(ACTIONS),
        "tool": rng.choice(TOOLS),
        "verb": rng.choice(VERBS),
        "noun": rng.choice(NOUNS),
        "adjective": rng.choice(ADJECTIVES),
        "module": module,
        "path": f"{rng.choice(DIRS)}/{module}.py",
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
        sentence = rng.choice(FILLER).format(**g)
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
    stream = rng.choice(STREAMS)
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
            queries.append(
                rng.choice(
                    (
                        "how to fix {problem} in {component}",
                        "{problem} {condition}",
                        "{component} {problem} {module}",
                        "{verb} {noun} {component}",
                        "{action}",
                    )
                ).format(**f)
            )
    return queries


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------


class TimedEmbedder:
    """Wraps an embedder; accumulates the seconds spent in ``embed`` and ``identity``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.embed_s = 0.0
        self.identity_s = 0.0
        self.embedded = 0

    def reset(self) -> None:
        self.embed_s = self.identity_s = 0.0
        self.embedded = 0

    def identity(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return dict(self.inner.identity())
        finally:
            self.identity_s += time.perf_counter() - start

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        start = time.perf_counter()
        try:
            return np.asarray(self.inner.embed(texts, progress))
        finally:
            self.embed_s += time.perf_counter() - start
            self.embedded += len(texts)


@contextlib.contextmanager
def lance_phases() -> Iterator[dict[str, float]]:
    """Time LanceDB's table/connection calls (outermost call only) while the block runs."""
    from lancedb.db import LanceDBConnection
    from lancedb.table import LanceMergeInsertBuilder, LanceTable  # type: ignore[attr-defined]

    phases: dict[str, float] = defaultdict(float)
    depth = [0]
    patched: list[tuple[type, str, Any]] = []

    def wrap(cls: type, attr: str, label: Callable[..., str]) -> None:
        original = cls.__dict__[attr]

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    phases[label(*args, **kwargs)] += time.perf_counter() - start

        patched.append((cls, attr, original))
        setattr(cls, attr, timed)

    def index_label(self: Any, column: str = "", *args: Any, config: Any = None, **_: Any) -> str:
        return f"create_index({column}, {type(config).__name__})"

    wrap(LanceDBConnection, "create_table", lambda *a, **k: "create_table (write)")
    wrap(LanceDBConnection, "open_table", lambda *a, **k: "open_table")
    wrap(LanceTable, "create_index", index_label)
    wrap(LanceTable, "optimize", lambda *a, **k: "optimize")
    wrap(LanceTable, "to_arrow", lambda *a, **k: "to_arrow (read id, sig_hash)")
    wrap(LanceTable, "delete", lambda *a, **k: "delete")
    wrap(LanceTable, "count_rows", lambda *a, **k: "count_rows")
    wrap(LanceTable, "list_indices", lambda *a, **k: "list_indices")
    wrap(LanceMergeInsertBuilder, "execute", lambda *a, **k: "merge_insert")
    try:
        yield phases
    finally:
        for cls, attr, original in reversed(patched):
            setattr(cls, attr, original)


@dataclass
class Timed:
    seconds: float
    report: IndexReport
    embed_s: float
    identity_s: float
    phases: dict[str, float]

    def breakdown(self) -> list[tuple[str, float]]:
        known = self.embed_s + self.identity_s + sum(self.phases.values())
        parts = [("embed (embedder.embed)", self.embed_s)]
        parts += sorted(self.phases.items(), key=lambda kv: -kv[1])
        parts.append(("embedder identity (model sha256)", self.identity_s))
        parts.append(("rest (python rows → arrow, manifest, …)", max(0.0, self.seconds - known)))
        return parts


def timed_store_call(
    call: Callable[..., IndexReport],
    samples: list[RagSample],
    embedder: TimedEmbedder,
    **kwargs: Any,
) -> Timed:
    embedder.reset()
    gc.collect()
    with lance_phases() as phases:
        start = time.perf_counter()
        report = call(samples, embedder, **kwargs)
        seconds = time.perf_counter() - start
    return Timed(seconds, report, embedder.embed_s, embedder.identity_s, dict(phases))


@dataclass
class Latency:
    label: str
    samples_ms: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples_ms, 95))

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)


def measure(
    queries: list[str], runs: dict[str, Callable[[str], Any]], warmup: int = WARMUP_QUERIES
) -> dict[str, Latency]:
    """Each query through every run, interleaved (drift hits all modes alike)."""
    for query in queries[:warmup]:
        for run in runs.values():
            run(query)
    out = {name: Latency(name) for name in runs}
    for query in queries:
        for name, run in runs.items():
            start = time.perf_counter()
            run(query)
            out[name].samples_ms.append((time.perf_counter() - start) * 1000)
    return out


# ---------------------------------------------------------------------------------------------
# The in-memory baseline: numpy exact cosine + bm25s, fused the same way
# ---------------------------------------------------------------------------------------------


class Baseline:
    """What a hand-rolled in-memory hybrid search costs over the same vectors and texts."""

    def __init__(self, columns: dict[str, list[Any]], vectors: np.ndarray, embedder: Any) -> None:
        import bm25s  # type: ignore[import-untyped]

        self.columns = columns
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self._bm25s = bm25s
        tokens = bm25s.tokenize(columns["text"], stopwords="en", show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.vocab = self.bm25.vocab_dict

    def _row(self, i: int, score: float) -> dict[str, Any]:
        row = {name: values[i] for name, values in self.columns.items()}
        row["_raw_score"] = score
        return row

    def exact(self, vector: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ vector
        limit = min(limit, len(scores))
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.lexsort((top, -scores[top]))]
        return top, scores[top]

    def vector(self, query: str, limit: int) -> list[dict[str, Any]]:
        vector = self.embedder.embed([query])[0]
        top, scores = self.exact(vector, limit)
        return [self._row(int(i), float(s)) for i, s in zip(top, scores, strict=True)]

    def fts(self, query: str, limit: int) -> list[dict[str, Any]]:
        tokens = self._bm25s.tokenize(
            [query], stopwords="en", show_progress=False, return_ids=False
        )
        known = [[t for t in tokens[0] if t in self.vocab]]
        if not known[0]:
            return []
        docs, scores = self.bm25.retrieve(
            known, k=min(limit, len(self.vectors)), show_progress=False, n_threads=0
        )
        return [
            self._row(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]

    def search(self, query: str, mode: str = "hybrid", top_k: int = TOP_K) -> list[SearchHit]:
        pool = max(100, top_k * 4)  # as Retriever.search
        if mode == "vector":
            return Retriever._hits(self.vector(query, top_k), "vector")[:top_k]
        if mode == "fts":
            return Retriever._hits(self.fts(query, top_k), "fts")[:top_k]
        return fuse(self.vector(query, pool), self.fts(query, pool), k=RRF_K, **FUSE)[:top_k]


def _columns(store: PlaybookStore) -> tuple[dict[str, list[Any]], np.ndarray]:
    table = store.open().to_arrow()
    columns = {name: table.column(name).to_pylist() for name in HIT_COLUMNS}
    vector = table.column("vector").combine_chunks()
    dim = vector.type.list_size
    vectors = vector.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return columns, np.ascontiguousarray(vectors, dtype=np.float32)


def _recall(
    got: list[str],
    exact_ids: list[str],
    exact_scores: np.ndarray,
    score_of: dict[str, float],
    k: int,
) -> tuple[float, float]:
    """(strict, tie-aware) recall@k: tie-aware counts any hit scoring ≥ the k-th exact score."""
    got = got[:k]
    strict = len(set(got) & set(exact_ids[:k])) / k
    kth = float(exact_scores[k - 1]) - 1e-6
    tied = sum(1 for i in got if score_of.get(i, -9.0) >= kth) / k
    return strict, min(1.0, tied)


# ---------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    rows: int
    mean_chars: float
    mean_tokens: float
    truncated: int
    load_s: float
    raw_s: list[float]
    build: Timed
    update: Timed
    changed: int
    checks: dict[str, bool]
    max_seq_length: int = 256
    batch_size: int = 64
    ann_recall: dict[str, tuple[float, float, float]] | None = None


def measure_build(args: argparse.Namespace, workdir: Path) -> BuildResult:
    from distill.index import SentenceTransformerEmbedder

    _log(f"build: generating {args.build_rows:,} playbooks")
    corpus = generate(args.build_rows, args.seed)
    texts = [s.text for s in corpus.samples]
    start = time.perf_counter()
    minilm = SentenceTransformerEmbedder()
    load_s = time.perf_counter() - start
    model = minilm._model
    tokenizer = model.tokenizer
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    limit = int(model.max_seq_length or 256)

    def raw() -> float:
        gc.collect()
        start = time.perf_counter()
        model.encode(
            texts,
            batch_size=minilm.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return time.perf_counter() - start

    _log("build: warm-up encode")
    model.encode(texts[:128], batch_size=minilm.batch_size, show_progress_bar=False)
    raw_s = [raw()]
    _log(f"build: raw encode {raw_s[0]:.1f}s ({len(texts) / raw_s[0]:.1f} docs/s); full build")
    store = PlaybookStore(str(workdir / "minilm"))
    embedder = TimedEmbedder(minilm)
    build = timed_store_call(store.build, corpus.samples, embedder)
    _log(f"build: {build.seconds:.1f}s ({len(texts) / build.seconds:.1f} docs/s); raw again")
    raw_s.append(raw())
    _log(f"build: raw encode {raw_s[1]:.1f}s; update with {UPDATE_FRACTION:.0%} changed")

    changed_samples, changed_ids = change_some(corpus, UPDATE_FRACTION, args.seed)
    minilm._hash = None  # a real update runs in a fresh process and hashes the model once
    update = timed_store_call(store.update, changed_samples, embedder)
    r = update.report
    _log(f"build: update {update.seconds:.2f}s, embedded {r.embedded}, updated {r.updated}")

    # The update really replaced those rows' vectors, and left the others alone.
    stored = {row["id"]: row for row in store.rows(["id", "sig_hash", "vector"])}
    by_id = {s.id: s for s in changed_samples}
    fresh = minilm.embed([by_id[i].text for i in changed_ids])
    old = {s.id: s for s in corpus.samples}
    unchanged_probe = [s.id for s in corpus.samples[:50] if s.id not in set(changed_ids)]
    checks = {
        "report counts": (
            r.embedded == len(changed_ids)
            and r.updated == len(changed_ids)
            and r.inserted == 0
            and r.deleted == 0
            and r.unchanged == len(corpus.samples) - len(changed_ids)
            and embedder.embedded == len(changed_ids)
        ),
        "row count": len(stored) == len(corpus.samples),
        "changed rows re-embedded": all(
            stored[i]["sig_hash"] == by_id[i].provenance.sig_hash
            and float(np.dot(np.asarray(stored[i]["vector"], dtype=np.float32), v)) > 0.999
            for i, v in zip(changed_ids, fresh, strict=True)
        ),
        "unchanged rows kept": all(
            stored[i]["sig_hash"] == old[i].provenance.sig_hash for i in unchanged_probe
        ),
    }
    result = BuildResult(
        rows=len(texts),
        mean_chars=statistics.fmean(len(t) for t in texts),
        mean_tokens=statistics.fmean(min(n, limit) for n in lengths),
        truncated=sum(1 for n in lengths if n > limit),
        load_s=load_s,
        raw_s=raw_s,
        build=build,
        update=update,
        changed=len(changed_ids),
        checks=checks,
        max_seq_length=limit,
        batch_size=minilm.batch_size,
    )
    if args.minilm_ann:
        result.ann_recall = minilm_ann_recall(store, minilm, corpus, args)
    return result


def minilm_ann_recall(
    store: PlaybookStore, minilm: Any, corpus: Corpus, args: argparse.Namespace
) -> dict[str, tuple[float, float, float]]:
    """Informative: the store's HNSW-SQ config over real MiniLM vectors (the build-rows table)."""
    from lancedb.index import HnswSq

    _log("build: HNSW-SQ on the MiniLM table for a recall check")
    table = store._db.open_table(TABLE)
    table.create_index("vector", config=HnswSq(distance_type="cosine"), replace=True)
    columns, vectors = _columns_of(table)
    queries = make_queries(corpus, min(args.queries, 200), args.seed)
    exact = []
    for vector in minilm.embed(queries):
        scores = vectors @ vector
        order = np.lexsort((np.arange(len(scores)), -scores))[:TOP_K]
        exact.append((vector, [columns["id"][i] for i in order], scores[order], scores))
    knobs = {name: SWEEP[name] for name in ("LanceDB defaults", f"ef={ANN_EF}",
             f"ef={ANN_EF}, refine_factor=5")}  # fmt: skip
    return {
        name: _recall_of(functools.partial(_vector_ids, table, knob=knob), exact, columns["id"])
        for name, knob in knobs.items()
    }


def _columns_of(table: Any) -> tuple[dict[str, list[Any]], np.ndarray]:
    arrow = table.to_arrow()
    vector = arrow.column("vector").combine_chunks()
    vectors = vector.flatten().to_numpy(zero_copy_only=False).reshape(-1, vector.type.list_size)
    return {"id": arrow.column("id").to_pylist()}, np.ascontiguousarray(vectors, np.float32)


@dataclass
class SearchResult:
    rows: int
    build: Timed
    ann_index: bool
    ann_threshold: int
    baseline_index_s: float
    queries: int
    hash_latency: dict[str, Latency]
    minilm_latency: dict[str, Latency] | None
    minilm_embed: Latency | None
    recall: dict[str, tuple[float, float, float]]  # config → (strict, tie-aware, p50 ms)
    update: Timed | None = None
    update_changed: int = 0
    update_ok: bool = True
    index_info: list[str] = field(default_factory=list)
    breakdown: dict[str, Latency] = field(default_factory=dict)
    lean_agreement: float = 1.0


class _LeanBuilder:
    """A LanceDB query builder whose ``select`` keeps only id and the score, plus ``_rowid``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def select(self, columns: list[str]) -> _LeanBuilder:
        keep = [c for c in columns if c in ("id", "_distance", "_score")]
        self._inner = self._inner.select(keep).with_row_id(True)
        return self

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if result is self._inner or type(result) is type(self._inner):
                self._inner = result
                return self
            return result

        return call


class _LeanTable:
    def __init__(self, table: Any) -> None:
        self._table = table

    def search(self, *args: Any, **kwargs: Any) -> _LeanBuilder:
        return _LeanBuilder(self._table.search(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _fused_ids(
    vector: list[dict[str, Any]], text: list[dict[str, Any]], top_k: int
) -> list[tuple[str, int]]:
    """``fuse``'s ranking (same formulas, same tie-break) on lean rows: (id, _rowid) of the top."""
    fusion, alpha = FUSE["fusion"], FUSE["alpha"]
    scores: dict[str, float] = {}
    rowid: dict[str, int] = {}
    for hits, weight in ((vector, alpha), (text, 1.0 - alpha)):
        values = [row["_raw_score"] for row in hits]
        low, high = (min(values), max(values)) if values else (0.0, 0.0)
        for rank, row in enumerate(hits, 1):
            norm = 1.0 if high == low else (row["_raw_score"] - low) / (high - low)
            gain = 1.0 / (RRF_K + rank) if fusion == "rrf" else weight * norm
            scores[row["id"]] = scores.get(row["id"], 0.0) + gain
            rowid.setdefault(row["id"], row["_rowid"])
    order = sorted(scores, key=lambda key: (-scores[key], key))[:top_k]
    return [(key, rowid[key]) for key in order]


def hybrid_breakdown(
    retriever: Retriever, queries: list[str], top_k: int = TOP_K
) -> tuple[dict[str, Latency], float]:
    """Where a hybrid query's time goes, and a leaner hybrid built from the same calls.

    The sides are ``Retriever._vector`` / ``Retriever._fts`` themselves (so ef, the FTS query
    type and filters follow the shipped code). lean = the same two calls with ``select``
    narrowed to id + score + ``_rowid``, fused exactly as ``fuse`` ranks, then one
    ``take_row_ids`` for the top_k rows' columns; "2 threads" runs the two sides concurrently.
    agreement = share of queries whose top_k ids equal ``Retriever.search(mode="hybrid")``'s.
    """
    import copy
    from concurrent.futures import ThreadPoolExecutor

    pool = max(100, top_k * 4)
    lean_r = copy.copy(retriever)
    lean_r.table = _LeanTable(retriever.table)
    executor = ThreadPoolExecutor(max_workers=2)

    def fetch(top: list[tuple[str, int]]) -> list[dict[str, Any]]:
        if not top:
            return []
        rows = retriever.table.take_row_ids([r for _, r in top]).select(HIT_COLUMNS).to_list()
        by_id = {row["id"]: row for row in rows}
        return [by_id[i] for i, _ in top]

    def lean(query: str) -> list[dict[str, Any]]:
        vector = lean_r._vector(query, pool, None)
        text = lean_r._fts(query, pool, None)
        return fetch(_fused_ids(vector, text, top_k))

    def lean_parallel(query: str) -> list[dict[str, Any]]:
        vector = executor.submit(lean_r._vector, query, pool, None)
        text = executor.submit(lean_r._fts, query, pool, None)
        return fetch(_fused_ids(vector.result(), text.result(), top_k))

    fuse_inputs = {q: (retriever._vector(q, pool, None), retriever._fts(q, pool, None))
                   for q in queries}  # fmt: skip
    runs: dict[str, Callable[[str], Any]] = {
        "Retriever.search(mode='hybrid')": lambda q: retriever.search(q, top_k=top_k, **FUSE),
        f"↳ vector side: embed + {pool} rows, all columns": lambda q: retriever._vector(
            q, pool, None
        ),
        f"↳ fts side: {pool} rows, all columns": lambda q: retriever._fts(q, pool, None),
        "↳ fuse() of the two lists (python)": lambda q: fuse(*fuse_inputs[q], **FUSE),
        f"↳ vector side, id + score only ({pool} rows)": lambda q: lean_r._vector(q, pool, None),
        f"↳ fts side, id + score only ({pool} rows)": lambda q: lean_r._fts(q, pool, None),
        f"lean hybrid: ids only + fusion + take_row_ids({top_k})": lean,
        "lean hybrid, vector and fts sides in 2 threads": lean_parallel,
    }
    latency = measure(queries, runs)
    same = sum(
        [h.id for h in retriever.search(q, top_k=top_k, **FUSE)]
        == [r["id"] for r in lean_parallel(q)]
        for q in queries
    )
    executor.shutdown()
    return latency, same / len(queries)


def measure_search(args: argparse.Namespace, workdir: Path) -> SearchResult:
    _log(f"search: generating {args.rows:,} playbooks")
    corpus = generate(args.rows, args.seed + 100)
    store = PlaybookStore(str(workdir / "hash"))
    embedder = TimedEmbedder(HashingEmbedder())
    _log(f"search: building the table (hash-384, ann_threshold {args.ann_threshold:,})")
    build = timed_store_call(
        store.build, corpus.samples, embedder, ann_threshold=args.ann_threshold
    )
    _log(f"search: built in {build.seconds:.1f}s, ann_index={build.report.ann_index}")
    columns, vectors = _columns(store)
    start = time.perf_counter()
    hashing = HashingEmbedder()
    baseline = Baseline(columns, vectors, hashing)
    baseline_index_s = time.perf_counter() - start
    retriever = Retriever(store, hashing)
    table = retriever.table
    index_info = [
        f"{ix.name}: {ix.index_type} on {', '.join(ix.columns)}" for ix in table.list_indices()
    ]
    queries = make_queries(corpus, args.queries, args.seed)

    def flat(query: str) -> Any:  # Retriever._vector, but brute force inside LanceDB
        vector = retriever.embedder.embed([query])[0]
        return (
            retriever.table.search(vector, query_type="vector")
            .distance_type("cosine")
            .bypass_vector_index()
            .limit(TOP_K)
            .select([*HIT_COLUMNS, "_distance"])
            .to_list()
        )

    runs: dict[str, Callable[[str], Any]] = {
        "LanceDB vector": lambda q: retriever.search(q, mode="vector", top_k=TOP_K),
        "LanceDB fts": lambda q: retriever.search(q, mode="fts", top_k=TOP_K),
        "LanceDB hybrid": lambda q: retriever.search(q, mode="hybrid", top_k=TOP_K, **FUSE),
        "baseline vector (numpy exact)": lambda q: baseline.search(q, "vector", TOP_K),
        "baseline fts (bm25s)": lambda q: baseline.search(q, "fts", TOP_K),
        BASE_HYBRID: lambda q: baseline.search(q, "hybrid", TOP_K),
    }
    if build.report.ann_index:
        runs["LanceDB vector, brute force (bypass_vector_index)"] = flat
    _log(f"search: latency over {len(queries)} queries (hash query embedding)")
    hash_latency = measure(queries, runs)

    minilm_latency = minilm_embed = None
    if not args.skip_minilm_query:
        from distill.index import SentenceTransformerEmbedder

        minilm = SentenceTransformerEmbedder()
        minilm.embed(["warm up"])
        # Deliberately past the identity check: vectors are hash-384, queries MiniLM-384.
        retriever_m = Retriever(store, hashing)
        retriever_m.embedder = minilm
        baseline_m = Baseline.__new__(Baseline)
        baseline_m.__dict__.update(baseline.__dict__)
        baseline_m.embedder = minilm
        runs_m: dict[str, Callable[[str], Any]] = {
            "LanceDB vector": lambda q: retriever_m.search(q, mode="vector", top_k=TOP_K),
            "LanceDB hybrid": lambda q: retriever_m.search(q, mode="hybrid", top_k=TOP_K, **FUSE),
            "baseline vector (numpy exact)": lambda q: baseline_m.search(q, "vector", TOP_K),
            BASE_HYBRID: lambda q: baseline_m.search(q, "hybrid", TOP_K),
        }
        _log("search: latency with MiniLM query embedding")
        minilm_latency = measure(queries, runs_m)
        minilm_embed = measure(queries, {"MiniLM embed one query": lambda q: minilm.embed([q])})[
            "MiniLM embed one query"
        ]

    _log("search: hybrid breakdown and a leaner hybrid (diagnosis)")
    breakdown, agreement = hybrid_breakdown(retriever, queries)

    _log("search: recall@10 against numpy exact")
    recall = ann_recall(retriever, baseline, columns, queries, build.report.ann_index)

    result = SearchResult(
        rows=args.rows,
        build=build,
        ann_index=build.report.ann_index,
        ann_threshold=args.ann_threshold,
        baseline_index_s=baseline_index_s,
        queries=len(queries),
        hash_latency=hash_latency,
        minilm_latency=minilm_latency,
        minilm_embed=minilm_embed,
        recall=recall,
        index_info=index_info,
        breakdown=breakdown,
        lean_agreement=agreement,
    )
    if not args.skip_large_update:
        _log(f"search: update of the {args.rows:,}-row table, {UPDATE_FRACTION:.0%} changed")
        del retriever, baseline
        gc.collect()
        changed_samples, changed_ids = change_some(corpus, UPDATE_FRACTION, args.seed)
        result.update = timed_store_call(
            store.update, changed_samples, embedder, ann_threshold=args.ann_threshold
        )
        r = result.update.report
        result.update_changed = len(changed_ids)
        result.update_ok = r.embedded == r.updated == len(changed_ids) and r.deleted == 0
        _log(f"search: update {result.update.seconds:.1f}s")
    return result


ANN_EF = getattr(search_module, "ANN_EF", 300)
SWEEP: dict[str, Callable[[Any], Any]] = {
    "LanceDB defaults": lambda b: b,  # ef = 1.5 × limit
    "ef=100": lambda b: b.ef(100),
    f"ef={ANN_EF}": lambda b: b.ef(ANN_EF),
    "ef=1000": lambda b: b.ef(1000),
    "nprobes=50": lambda b: b.nprobes(50),
    "refine_factor=5": lambda b: b.refine_factor(5),
    f"ef={ANN_EF}, refine_factor=2": lambda b: b.ef(ANN_EF).refine_factor(2),
    f"ef={ANN_EF}, refine_factor=5": lambda b: b.ef(ANN_EF).refine_factor(5),
}
SHIPPED = "Retriever vector query as shipped"
BASE_HYBRID = "baseline hybrid (numpy + bm25s + fuse)"


def _vector_ids(table: Any, vector: np.ndarray, knob: Callable[[Any], Any]) -> list[str]:
    builder = table.search(vector, query_type="vector").distance_type("cosine")
    rows = knob(builder).limit(TOP_K).select(["id", "_distance"]).to_list()
    return [row["id"] for row in rows]


def _recall_of(
    run: Callable[[np.ndarray], list[str]],
    exact: list[tuple[np.ndarray, list[str], np.ndarray, np.ndarray]],
    ids: list[str],
) -> tuple[float, float, float]:
    """Mean strict and tie-aware recall@10, and the p50 ms of ``run``, over the queries."""
    strict, tied, ms = [], [], []
    for vector, exact_ids, exact_scores, scores in exact:
        start = time.perf_counter()
        got = run(vector)
        ms.append((time.perf_counter() - start) * 1000)
        s, t = _recall(got, exact_ids, exact_scores, _ScoreLookup(ids, scores), TOP_K)
        strict.append(s)
        tied.append(t)
    return statistics.fmean(strict), statistics.fmean(tied), float(np.median(ms))


def ann_recall(
    retriever: Retriever,
    baseline: Baseline,
    columns: dict[str, list[Any]],
    queries: list[str],
    ann: bool,
) -> dict[str, tuple[float, float, float]]:
    """recall@10 (strict, tie-aware) and p50 ms: the shipped query, then knob settings."""
    ids = columns["id"]
    exact = []
    for query in queries:
        vector = retriever.embedder.embed([query])[0]
        scores = baseline.vectors @ vector
        order = np.lexsort((np.arange(len(scores)), -scores))[:TOP_K]
        exact.append((vector, [ids[i] for i in order], scores[order], scores))
    by_vector = {id(e[0]): q for q, e in zip(queries, exact, strict=True)}

    def shipped(vector: np.ndarray) -> list[str]:  # Retriever._vector, query embedding included
        return [row["id"] for row in retriever._vector(by_vector[id(vector)], TOP_K, None)]

    out = {SHIPPED: _recall_of(shipped, exact, ids)}
    if ann:
        for name, knob in SWEEP.items():
            out[name] = _recall_of(
                functools.partial(_vector_ids, retriever.table, knob=knob), exact, ids
            )
    return out


class _ScoreLookup(dict):  # type: ignore[type-arg]
    """id → exact score, computed lazily (avoids a 100k-entry dict per query)."""

    def __init__(self, ids: list[str], scores: np.ndarray) -> None:
        super().__init__()
        self._ids, self._scores = ids, scores
        self._index: dict[str, int] | None = None

    def get(self, key: str, default: float = -9.0) -> float:  # type: ignore[override]
        if key.startswith("pb-") and key[3:].isdigit():
            i = int(key[3:])
            if i < len(self._ids) and self._ids[i] == key:
                return float(self._scores[i])
        if self._index is None:
            self._index = {value: n for n, value in enumerate(self._ids)}
        n = self._index.get(key)
        return default if n is None else float(self._scores[n])


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in (
        "torch",
        "sentence-transformers",
        "transformers",
        "lancedb",
        "pylance",
        "pyarrow",
        "bm25s",
        "numpy",
        "threadpoolctl",
    ):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


def _machine(threads: str) -> list[str]:
    return [
        f"- machine: {describe()}; python {platform.python_version()}",
        f"- {_versions()}",
        f"- threads: {threads}",
    ]


def _source_digest() -> str:
    digest = hashlib.sha256()
    files = sorted((REPO / "distill" / "index").rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def render(
    argv: list[str],
    args: argparse.Namespace,
    threads: str,
    load: tuple[str, str],
    build: BuildResult | None,
    search: SearchResult | None,
    digest: str,
) -> tuple[str, bool]:
    ok = True
    out = ["# distill index benchmark", ""]
    out.append(f"- command: `{shlex.join(['python', 'benchmarks/index.py', *argv])}`")
    out.append(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    out += _machine(threads)
    out.append(f"- load average at start / end: {load[0]} / {load[1]}")
    out.append(f"- distill/index source digest: {digest}")
    out.append(
        "- input: synthetic playbooks (seeded), `instruction\\n\\nresponse` of 200–800 chars, "
        "a ~3 000-word project vocabulary with a long tail; queries: half 4–7 consecutive words "
        "of a playbook, half topical phrases"
    )
    out.append("")
    targets: list[tuple[str, str, bool | None]] = []

    if build is not None:
        n = build.rows
        raw_mean = statistics.fmean(build.raw_s)
        raw_rate = n / raw_mean
        build_rate = n / build.build.seconds
        ratio = build_rate / raw_rate
        upd_ratio = build.update.seconds / build.build.seconds
        r = build.update.report
        out += [
            f"## Build and update: {n:,} playbooks, all-MiniLM-L6-v2",
            "",
            f"Texts: mean {build.mean_chars:.0f} chars, {build.mean_tokens:.0f} tokens "
            f"(max_seq_length {build.max_seq_length}; {build.truncated} truncated). Model load "
            f"{build.load_s:.1f}s (not counted).",
            "",
            "| step | seconds | docs/s |",
            "|---|--:|--:|",
            f"| raw `model.encode` (batch {build.batch_size}), before the build "
            f"| {build.raw_s[0]:.2f} "
            f"| {n / build.raw_s[0]:.1f} |",
            f"| raw `model.encode`, after the build | {build.raw_s[1]:.2f} "
            f"| {n / build.raw_s[1]:.1f} |",
            f"| **`PlaybookStore.build`** (embed + write + FTS index + manifest) "
            f"| **{build.build.seconds:.2f}** | **{build_rate:.1f}** |",
            f"| **`PlaybookStore.update`**, {build.changed} rows changed "
            f"| **{build.update.seconds:.2f}** | |",
            "",
            "Where the time goes:",
            "",
            "| phase | build s | update s |",
            "|---|--:|--:|",
        ]
        phases = dict(build.build.breakdown())
        uphases = dict(build.update.breakdown())
        for name in dict.fromkeys([*phases, *uphases]):
            out.append(f"| {name} | {phases.get(name, 0.0):.3f} | {uphases.get(name, 0.0):.3f} |")
        out.append("")
        out.append(
            f"Update report: rows {r.rows}, embedded {r.embedded}, inserted {r.inserted}, "
            f"updated {r.updated}, deleted {r.deleted}, unchanged {r.unchanged}; "
            + "; ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in build.checks.items())
        )
        spread = max(build.raw_s) / min(build.raw_s) - 1
        if spread > 0.10:
            out.append(
                f"\n**Noise:** the two raw encodes differ by {spread:.0%}; the machine was "
                "not quiet (see the load average), so the build ratio is not trustworthy."
            )
        if build.ann_recall is not None:
            out += [
                "",
                f"Informative: the store's HNSW-SQ config trained on these {n:,} MiniLM vectors "
                "(index added to the scratch table after the measurements), recall@10 against "
                "exact cosine over MiniLM-embedded queries:",
                "",
                "| vector query | recall@10 | tie-aware | p50 ms |",
                "|---|--:|--:|--:|",
            ]
            for name, (strict, tied, ms) in build.ann_recall.items():
                out.append(f"| {name} | {strict:.3f} | {tied:.3f} | {ms:.1f} |")
        out.append("")
        targets.append(
            (
                f"build rate ≥ {BUILD_TARGET:g}× raw encode rate ({n:,} docs, MiniLM)",
                f"{build_rate:.1f} vs {raw_rate:.1f} docs/s = {ratio:.2f}×",
                ratio >= BUILD_TARGET,
            )
        )
        counts_ok = all(build.checks.values())
        targets.append(
            (
                f"update embeds exactly the {build.changed} changed rows",
                f"embedded {r.embedded}, updated {r.updated}, inserted {r.inserted}, "
                f"deleted {r.deleted}, unchanged {r.unchanged}",
                counts_ok,
            )
        )
        targets.append(
            (
                f"update ({UPDATE_FRACTION:.0%} changed) ≤ {UPDATE_TARGET:.0%} of the build",
                f"{build.update.seconds:.2f}s / {build.build.seconds:.2f}s = {upd_ratio:.1%}",
                upd_ratio <= UPDATE_TARGET,
            )
        )

    if search is not None:
        out += [
            f"## Query latency: {search.rows:,} playbooks, hash-384 vectors",
            "",
            f"Table built with `PlaybookStore.build(..., ann_threshold={search.ann_threshold:,})` "
            f"in {search.build.seconds:.1f}s; ANN index: {'yes' if search.ann_index else 'no'} "
            f"({'; '.join(search.index_info)}). Baseline in memory: the same vectors read back "
            f"from the table (numpy float32, exact cosine = dot product of unit vectors) and "
            f"the same texts in bm25s (stopwords en, no stemmer; indexed in "
            f"{search.baseline_index_s:.1f}s), fused by `distill.index.search.fuse` with the "
            f"same settings as the LanceDB hybrid ({_fusion_label()}) over the same candidate "
            f"pool (100 per side). top_k={TOP_K}; "
            f"{search.queries} queries after {WARMUP_QUERIES} warm-up queries, every mode "
            f"interleaved per query.",
            "",
            "Build phases:",
            "",
            "| phase | seconds |",
            "|---|--:|",
        ]
        out += [f"| {name} | {s:.2f} |" for name, s in search.build.breakdown()]
        out += ["", "### Query embedded with the hashing embedder", ""]
        out += _latency_table(search.hash_latency)
        lance = search.hash_latency["LanceDB hybrid"].p50
        base = search.hash_latency[BASE_HYBRID].p50
        targets.append(
            (
                f"hybrid p50 ≤ {LATENCY_TARGET:g}× baseline p50 ({search.rows:,} rows, hash query)",
                f"{lance:.1f} ms vs {base:.1f} ms = {lance / base:.2f}×",
                lance / base <= LATENCY_TARGET,
            )
        )
        if search.minilm_latency is not None and search.minilm_embed is not None:
            out += [
                "",
                "### Query embedded with MiniLM (index vectors still hash-384)",
                "",
                "The Retriever's embedder was swapped after opening (past the identity check) "
                "and the baseline embeds with the same model, so both pay the same MiniLM "
                f"query embedding: p50 {search.minilm_embed.p50:.1f} ms, p95 "
                f"{search.minilm_embed.p95:.1f} ms on its own. Rankings are meaningless here; "
                "latencies are what a MiniLM index of this size costs. fts-only does not embed "
                "(see above).",
                "",
            ]
            out += _latency_table(search.minilm_latency)
            lance_m = search.minilm_latency["LanceDB hybrid"].p50
            base_m = search.minilm_latency[BASE_HYBRID].p50
            targets.append(
                (
                    f"hybrid p50 ≤ {LATENCY_TARGET:g}× baseline p50 ({search.rows:,} rows, "
                    "MiniLM query)",
                    f"{lance_m:.1f} ms vs {base_m:.1f} ms = {lance_m / base_m:.2f}×",
                    lance_m / base_m <= LATENCY_TARGET,
                )
            )
        if search.breakdown:
            out += [
                "",
                "### Diagnosis: where a hybrid query goes (hash query embedding)",
                "",
                "The two sides as `Retriever.search` runs them, then the same LanceDB calls "
                "asking only for id + score (+ `_rowid`) over the candidate pool, fused on ids "
                f"exactly as `fuse` ranks ({_fusion_label()}), then one `take_row_ids` for the "
                "top rows' columns. "
                f"The lean hybrid returned the same top {TOP_K} ids as `Retriever.search` for "
                f"{search.lean_agreement:.0%} of the queries.",
                "",
            ]
            out += _latency_table(search.breakdown)
        out += [
            "",
            "### Vector recall@10 against numpy exact cosine (hash query vectors)",
            "",
            "strict = overlap of ids with the exact top 10; tie-aware also counts a hit whose "
            "exact score equals the 10th exact score (hash vectors have ties). p50: the "
            "shipped row is `Retriever._vector(query, 10)` (hash query embedding, all columns); "
            "the others are the bare LanceDB query with only id + distance selected.",
            "",
            "| store vector query | recall@10 | tie-aware | p50 ms |",
            "|---|--:|--:|--:|",
        ]
        for name, (strict, tied, ms) in search.recall.items():
            out.append(f"| {name} | {strict:.3f} | {tied:.3f} | {ms:.1f} |")
        shipped = search.recall[SHIPPED]
        targets.append(
            (
                "ANN recall@10 vs exact (report; no target set)"
                if search.ann_index
                else "vector recall@10 vs exact (no ANN index at this size)",
                f"{shipped[0]:.3f} (tie-aware {shipped[1]:.3f})",
                None,
            )
        )
        if search.update is not None:
            u = search.update
            out += [
                "",
                f"### Informative: update of the {search.rows:,}-row table, "
                f"{search.update_changed:,} rows changed (hash-384)",
                "",
                f"{u.seconds:.1f}s = {u.seconds / search.build.seconds:.1%} of its build "
                f"({search.build.seconds:.1f}s); report: embedded {u.report.embedded}, updated "
                f"{u.report.updated}, deleted {u.report.deleted}"
                f"{'' if search.update_ok else ' — **counts wrong**'}.",
                "",
                "| phase | seconds |",
                "|---|--:|",
            ]
            out += [f"| {name} | {s:.2f} |" for name, s in u.breakdown()]
        out.append("")

    out += ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    for name, measured, passed in targets:
        out.append(f"| {name} | {measured} | {'report' if passed is None else _verdict(passed)} |")
        if passed is False:
            ok = False
    out.append("")
    return "\n".join(out), ok


def _fusion_label() -> str:
    if FUSE["fusion"] == "rrf":
        return f"RRF, K={RRF_K}"
    return f"{FUSE['fusion']}, alpha {FUSE['alpha']:g}"


def _latency_table(latency: dict[str, Latency]) -> list[str]:
    out = ["| search | p50 ms | p95 ms | mean ms |", "|---|--:|--:|--:|"]
    for lat in latency.values():
        out.append(f"| {lat.label} | {lat.p50:.1f} | {lat.p95:.1f} | {lat.mean:.1f} |")
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=100_000,
        help="rows of the latency/ANN table (hash-384); 0 skips it",
    )
    parser.add_argument(
        "--build-rows",
        type=int,
        default=2_000,
        help="rows of the MiniLM build/update measurement; 0 skips it",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ann-threshold", type=int, default=DEFAULT_ANN_THRESHOLD)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="numpy's BLAS threads (threadpoolctl); 0 leaves them alone",
    )
    parser.add_argument("--skip-minilm-query", action="store_true")
    parser.add_argument("--skip-large-update", action="store_true")
    parser.add_argument(
        "--no-minilm-ann",
        dest="minilm_ann",
        action="store_false",
        help="skip the informative HNSW-SQ recall check on MiniLM vectors",
    )
    parser.add_argument("--fusion", choices=("rrf", "weighted"), default=None,
                        help="hybrid fusion for LanceDB and the baseline (default: the "
                        "Retriever's default)")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/index.md")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def _threads(blas: int) -> tuple[str, Any]:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

    limiter = threadpool_limits(limits=blas, user_api="blas") if blas > 0 else None
    pools = ", ".join(
        f"{p['internal_api']} ({p['prefix']}) {p['num_threads']}" for p in threadpool_info()
    )
    return f"torch {torch.get_num_threads()} intra-op; {pools}", limiter


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.fusion is not None:
        FUSE["fusion"] = args.fusion
    if args.alpha is not None:
        FUSE["alpha"] = args.alpha
    threads, _limiter = _threads(args.blas_threads)
    _log(f"threads: {threads}")
    load_start = _loadavg()
    digest = _source_digest()
    workdir = Path(tempfile.mkdtemp(prefix="distill-index-bench-", dir=args.workdir))
    _log(f"working in {workdir}")
    build = search = None
    try:
        if args.build_rows > 0:
            build = measure_build(args, workdir)
        if args.rows > 0:
            search = measure_search(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = _loadavg()
    end_digest = _source_digest()
    if end_digest != digest:
        _log("warning: distill/index changed while the benchmark ran")
        digest += f"; **changed during the run**, at end: {end_digest}"
    text, ok = render(argv, args, threads, (load_start, load_end), build, search, digest)
    args.out.write_text(text)
    print(text)
    _log(f"report written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
