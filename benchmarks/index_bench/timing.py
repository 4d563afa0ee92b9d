"""Timing helpers: a timed embedder, LanceDB calls split into phases, latency percentiles.

LanceDB's table and connection calls are timed by wrapping their methods (outermost call only)
while a build or update runs; the embedder is wrapped to time ``embed`` and ``identity``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.index_bench.common import WARMUP_QUERIES
from distill.index import Embedder, IndexReport
from distill.index.embedders import Progress
from distill.schemas import RagSample


class TimedEmbedder:
    """Wraps an embedder; accumulates the seconds spent in ``embed`` and ``identity``."""

    def __init__(self, inner: Embedder) -> None:
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


def _index_label(self: Any, column: str = "", *args: Any, config: Any = None, **kwargs: Any) -> str:
    return f"create_index({column}, {type(config).__name__})"


def _fixed(label: str) -> Callable[..., str]:
    return lambda *args, **kwargs: label


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

    wrap(LanceDBConnection, "create_table", _fixed("create_table (write)"))
    wrap(LanceDBConnection, "open_table", _fixed("open_table"))
    wrap(LanceTable, "create_index", _index_label)
    for attr in ("optimize", "delete", "count_rows", "list_indices"):
        wrap(LanceTable, attr, _fixed(attr))
    wrap(LanceTable, "to_arrow", _fixed("to_arrow (read id, sig_hash)"))
    wrap(LanceMergeInsertBuilder, "execute", _fixed("merge_insert"))
    try:
        yield phases
    finally:
        for cls, attr, original in reversed(patched):
            setattr(cls, attr, original)


@dataclass
class Timed:
    """One build or update: seconds, its report, and where the seconds went."""

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
    """``call(samples, embedder, **kwargs)`` (``PlaybookStore.build`` or ``update``), timed."""
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
