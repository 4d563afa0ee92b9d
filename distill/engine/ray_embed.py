"""Embedding on Ray: ``map_batches`` over actors, each loading the model once.

:class:`RayEmbedder` stands in for the embedder an index build is given: same ``name``,
``dim`` and ``identity()``, and ``embed`` returns the same vectors in the same order, computed
by a pool of actors instead of this process. The index build around it is the local one:
rows written to LanceDB, then the FTS and ANN indexes and the manifest, by the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.data

from distill.errors import DistillError
from distill.index.embedders import Embedder, Progress, make_embedder

BATCH = 256  # texts per actor call: SentenceTransformerEmbedder's own step (4 × 64)
MAX_BLOCK = BATCH * 16  # texts per object-store block, at most


class RayEmbedder:
    """``local``'s vectors, embedded by ``actors`` Ray actors (one model load each)."""

    def __init__(self, local: Embedder, name: str | None, seed: int, *, actors: int) -> None:
        self.local = local
        self.name = local.name
        self.dim = local.dim
        self.spec = (name, seed)
        self.actors = max(1, actors)

    def identity(self) -> dict[str, Any]:
        return self.local.identity()

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        total = len(texts)
        vectors = np.zeros((total, self.dim), dtype=np.float32)
        if not total:
            return vectors
        blocks = _blocks(texts, _block_size(total, self.actors))
        name, seed = self.spec
        dataset: Any = ray.data.from_arrow_refs(blocks)  # Ray's stubs type batches loosely
        dataset = dataset.map_batches(
            EmbedActor,
            fn_constructor_kwargs={"name": name, "seed": seed, "identity": self.identity()},
            concurrency=min(self.actors, len(blocks)),
            batch_size=BATCH,
            batch_format="numpy",
        )
        seen = np.zeros(total, dtype=bool)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            vectors[batch["seq"]] = np.asarray(batch["vector"], dtype=np.float32)
            seen[batch["seq"]] = True  # the order restored: each vector goes to its text's row
            if progress is not None:
                progress(int(seen.sum()), total)
        if not seen.all():
            raise DistillError(
                f"Ray embedded {int(seen.sum())} of {total} texts: nothing was written",
                hint="a lost Ray worker; rerun, or run with --engine local",
            )
        return vectors


def _blocks(texts: Sequence[str], size: int) -> list[Any]:
    """The texts in the object store, ``size`` a block, each beside its position."""
    return [
        ray.put(pa.table({"seq": range(start, start + len(chunk)), "text": chunk}))
        for start in range(0, len(texts), size)
        for chunk in [list(texts[start : start + size])]
    ]


def _block_size(total: int, actors: int) -> int:
    """Whole batches per block, enough blocks to keep every actor busy."""
    per_actor = -(-total // actors)
    return min(MAX_BLOCK, max(BATCH, -(-per_actor // BATCH) * BATCH))


class EmbedActor:
    """One model per actor, loaded when the actor starts and checked against the driver's."""

    def __init__(self, name: str | None, seed: int, identity: dict[str, Any]) -> None:
        self.embedder = make_embedder(name, seed=seed)
        if self.embedder.identity() != identity:
            raise DistillError(
                f"a Ray worker's embedder is {self.embedder.identity()}, not {identity}",
                hint="install the same distill and model on every node of the cluster",
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed([str(text) for text in batch["text"]])
        return {"seq": batch["seq"], "vector": vectors}
