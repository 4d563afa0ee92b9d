"""What a warm server holds: the opened index, the loaded model, the generation queue, counters."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool

from distill.errors import DistillError
from distill.home import Home
from distill.index import PlaybookStore, Retriever, SearchHit
from distill.index.embedders import Embedder, Progress, embedder_for
from distill.index.objectstore import MANIFEST_FILE, index_files, is_object_store
from distill.index.search import Mode
from distill.replay.clients import ChatModel
from distill.replay.run import ModelFactory, ReplayOptions, replay
from distill.schemas import ReplayRun
from distill.serve.settings import ServeSettings

T = TypeVar("T")


class SerializedEmbedder:
    """One query embedding at a time: a fast tokenizer shared across threads can fail with
    "Already borrowed", and on a few cores parallel torch calls only fight for them."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        with self._lock:
            return self.inner.embed(texts, progress)


class GenerationQueue:
    """Runs model work on ``slots`` worker threads in arrival order (FIFO), never failing a job
    for being busy. One slot for the embedded model: llama.cpp is not thread-safe."""

    def __init__(self, slots: int = 1) -> None:
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="generate")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        return self._pending

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            self._pending += 1
        try:
            return await asyncio.wrap_future(self._executor.submit(job))
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class ServeStats:
    """Request and replay counters of one server's lifetime."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_at = int(time.time())
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, int]] = Counter()
        self._verdicts: Counter[str] = Counter()
        self.in_flight = 0

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def request_done(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self._requests[(endpoint, status)] += 1

    def replayed(self, run: ReplayRun) -> None:
        with self._lock:
            self._verdicts[run.verdict] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_endpoint: Counter[str] = Counter()
            by_status: Counter[str] = Counter()
            for (endpoint, status), count in self._requests.items():
                by_endpoint[endpoint] += count
                by_status[str(status)] += count
            return {
                "uptime_s": round(time.monotonic() - self.started, 1),
                "requests": {
                    "total": sum(by_endpoint.values()),
                    "in_flight": self.in_flight,
                    "by_endpoint": dict(sorted(by_endpoint.items())),
                    "by_status": dict(sorted(by_status.items())),
                },
                "replays": {
                    v: self._verdicts[v] for v in ("passed", "failed", "abstained", "dry_run")
                },
            }


class ServeState:
    """The home, the index (reopened when its manifest changes), the model (loaded once), the
    queue in front of it and the counters. Replays go through ``distill.replay.replay``, so a
    served replay is logged exactly as ``distill replay`` logs it.

    A local manifest is looked at on every search (a stat); one on an object store at most every
    ``object_store_recheck_s`` seconds (a HEAD request), so replicas behind a load balancer
    reading one S3 index all move to a newly published version within that time.
    """

    object_store_recheck_s = 5.0

    def __init__(
        self,
        home: Home,
        settings: ServeSettings,
        *,
        index_uri: str,
        local: ModelFactory,
        escalation: ModelFactory | None = None,
        minilm_path: str | None = None,
    ) -> None:
        self.home = home
        self.settings = settings
        self.index_uri = index_uri
        self.minilm_path = minilm_path
        self.queue = GenerationQueue(settings.generation_slots)
        self.stats = ServeStats()
        self._open_local, self._open_escalation = local, escalation
        self._local: ChatModel | None = None
        self._escalation: ChatModel | None = None
        self._retriever: Retriever | None = None
        self._files = index_files(index_uri)
        self._stamp: str | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # a model load takes seconds: searches must not wait

    # --- the index ---------------------------------------------------------------------------

    def retriever(self) -> Retriever:
        """The published table; reopened (keeping the loaded embedder) after an index update."""
        stamp = self._manifest_stamp()
        with self._lock:
            if self._retriever is None or (stamp is not None and stamp != self._stamp):
                self._retriever = self._open_retriever(self._retriever)
                self._stamp = stamp
            return self._retriever

    def _open_retriever(self, previous: Retriever | None) -> Retriever:
        store = PlaybookStore(self.index_uri)
        wanted = store.require_manifest().embedder
        if previous is not None and previous.embedder.identity() == wanted:
            embedder: Embedder = previous.embedder
        else:
            embedder = SerializedEmbedder(embedder_for(wanted, self.minilm_path))
        return Retriever(store, embedder)

    def _manifest_stamp(self) -> str | None:
        """The manifest's stamp (None: unchanged as far as we know, or unreadable)."""
        if is_object_store(self.index_uri):
            now = time.monotonic()
            if now - self._checked_at < self.object_store_recheck_s:
                return None
            self._checked_at = now
            try:
                return self._files.stamp(MANIFEST_FILE)
            except DistillError:
                return None  # the store is unreachable for now: keep serving the open version
        return self._files.stamp(MANIFEST_FILE)

    async def search(
        self, query: str, *, mode: Mode, top_k: int, category: str | None, source: str | None
    ) -> tuple[int, list[SearchHit]]:
        def job() -> tuple[int, list[SearchHit]]:
            retriever = self.retriever()
            hits = retriever.search(query, mode=mode, top_k=top_k, category=category, source=source)
            return retriever.version, hits

        return await run_in_threadpool(job)

    # --- the models --------------------------------------------------------------------------

    def local_model(self) -> ChatModel:
        with self._model_lock:
            if self._local is None:
                self._local = self._open_local()
            return self._local

    def escalation_model(self) -> ChatModel:
        assert self._open_escalation is not None  # replay only asks when one is configured
        with self._model_lock:
            if self._escalation is None:
                self._escalation = self._open_escalation()
            return self._escalation

    @property
    def model_loaded(self) -> ChatModel | None:
        return self._local

    # --- replay ------------------------------------------------------------------------------

    async def replay(self, task: str, options: ReplayOptions) -> ReplayRun:
        """A dry run needs no model and runs at once; anything else waits its turn in the queue."""

        def job() -> ReplayRun:
            return replay(
                self.home,
                task,
                options,
                retriever=self.retriever,
                local=self.local_model,
                escalation=self.escalation_model if self._open_escalation else None,
            )

        run = await (run_in_threadpool(job) if options.dry_run else self.queue.run(job))
        self.stats.replayed(run)
        return run

    def close(self) -> None:
        self.queue.close()
