"""Build rate and incremental update with the real all-MiniLM-L6-v2.

The full ``PlaybookStore.build`` against the raw ``SentenceTransformer.encode`` of the same texts
with the same model (its own instance, measured before and after the build; the mean is the
reference). Then an update of that table with 1 % of the rows changed: the report must say
exactly those rows were embedded, and the store must hold their new vectors.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.index_bench.common import UPDATE_FRACTION, Options, log
from benchmarks.index_bench.corpus import Corpus, change_some, generate, make_queries
from benchmarks.index_bench.recall import RecallRow, minilm_ann_recall
from benchmarks.index_bench.timing import Timed, TimedEmbedder, timed_store_call
from distill.index import PlaybookStore, SentenceTransformerEmbedder
from distill.schemas import RagSample


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
    ann_recall: dict[str, RecallRow] | None = None


class RawModel:
    """The same model as the embedder, loaded on its own: ``encode`` with nothing around it."""

    def __init__(self, path: str, batch_size: int) -> None:
        from sentence_transformers import SentenceTransformer

        self.model: Any = SentenceTransformer(path, device="cpu")
        self.batch_size = batch_size
        self.max_seq_length = int(self.model.max_seq_length or 256)

    def token_counts(self, texts: list[str]) -> list[int]:
        ids = self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [len(row) for row in ids]

    def encode_seconds(self, texts: list[str]) -> float:
        gc.collect()
        start = time.perf_counter()
        self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return time.perf_counter() - start


def _update_checks(
    store: PlaybookStore,
    corpus: Corpus,
    changed: tuple[list[RagSample], list[str]],
    update: Timed,
    embedded: int,
    minilm: SentenceTransformerEmbedder,
) -> dict[str, bool]:
    """The update replaced exactly the changed rows' vectors, and left the others alone."""
    samples, changed_ids = changed
    r = update.report
    stored = {row["id"]: row for row in store.rows(["id", "sig_hash", "vector"])}
    by_id = {s.id: s for s in samples}
    fresh = minilm.embed([by_id[i].text for i in changed_ids])
    old = {s.id: s for s in corpus.samples}
    unchanged_probe = [s.id for s in corpus.samples[:50] if s.id not in set(changed_ids)]
    n = len(changed_ids)
    return {
        "report counts": (r.embedded, r.updated, r.inserted, r.deleted, r.unchanged, embedded)
        == (n, n, 0, 0, len(corpus.samples) - n, n),
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


def _timed_build(
    raw: RawModel, minilm: SentenceTransformerEmbedder, store: PlaybookStore, corpus: Corpus
) -> tuple[Timed, list[float]]:
    """The full build, with a raw encode of the same texts right before and right after it."""
    texts = [s.text for s in corpus.samples]
    log("build: warm-up encode")
    raw.encode_seconds(texts[:128])
    minilm.embed(texts[:128])
    raw_s = [raw.encode_seconds(texts)]
    log(f"build: raw encode {raw_s[0]:.1f}s ({len(texts) / raw_s[0]:.1f} docs/s); full build")
    build = timed_store_call(store.build, corpus.samples, TimedEmbedder(minilm))
    log(f"build: {build.seconds:.1f}s ({len(texts) / build.seconds:.1f} docs/s); raw again")
    raw_s.append(raw.encode_seconds(texts))
    log(f"build: raw encode {raw_s[1]:.1f}s; update with {UPDATE_FRACTION:.0%} changed")
    return build, raw_s


def _timed_update(
    options: Options, store: PlaybookStore, corpus: Corpus, minilm: SentenceTransformerEmbedder
) -> tuple[Timed, int, dict[str, bool]]:
    """The update with 1 % changed: its timing, how many rows changed, and its checks."""
    changed = change_some(corpus, UPDATE_FRACTION, options.seed)
    # a real update runs in a fresh process: a fresh embedder hashes the model once, as it would
    fresh = TimedEmbedder(SentenceTransformerEmbedder(minilm.path))
    update = timed_store_call(store.update, changed[0], fresh)
    r = update.report
    log(f"build: update {update.seconds:.2f}s, embedded {r.embedded}, updated {r.updated}")
    checks = _update_checks(store, corpus, changed, update, fresh.embedded, minilm)
    return update, len(changed[1]), checks


def measure_build(options: Options, workdir: Path) -> BuildResult:
    log(f"build: generating {options.build_rows:,} playbooks")
    corpus = generate(options.build_rows, options.seed)
    texts = [s.text for s in corpus.samples]
    start = time.perf_counter()
    minilm = SentenceTransformerEmbedder()
    load_s = time.perf_counter() - start
    raw = RawModel(minilm.path, minilm.batch_size)
    lengths, limit = raw.token_counts(texts), raw.max_seq_length
    store = PlaybookStore(str(workdir / "minilm"))
    build, raw_s = _timed_build(raw, minilm, store, corpus)
    update, changed, checks = _timed_update(options, store, corpus, minilm)
    result = BuildResult(
        rows=len(texts),
        mean_chars=statistics.fmean(len(t) for t in texts),
        mean_tokens=statistics.fmean(min(n, limit) for n in lengths),
        truncated=sum(1 for n in lengths if n > limit),
        load_s=load_s,
        raw_s=raw_s,
        build=build,
        update=update,
        changed=changed,
        checks=checks,
        max_seq_length=limit,
        batch_size=minilm.batch_size,
    )
    if options.minilm_ann:
        log("build: HNSW-SQ on the MiniLM table for a recall check")
        queries = make_queries(corpus, min(options.queries, 200), options.seed)
        result.ann_recall = minilm_ann_recall(store, minilm, queries)
    return result
