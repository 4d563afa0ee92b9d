"""MiniLM on ONNX Runtime: ``minilm-onnx`` (fp32) and ``minilm-onnx-int8`` (dynamic int8).

Same model, tokenizer, truncation (256 tokens), mean pooling and normalisation as the torch
``minilm``, so fp32 vectors agree with it to ~1e-6; int8 trades a little agreement for speed.
Each is its own embedder identity (name, dim, weights hash, export recipe): an index built with
one refuses the others. At run time only onnxruntime, the tokenizer and numpy are used; the
graph is exported on first use (``distill.index.onnx_export``) and kept per machine.

>>> embedder = OnnxEmbedder(source, quantized=True)   # doctest: +SKIP
>>> embedder.embed(["retry the webhook once"]).shape  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distill.index.onnx_export import (
    ONNX,
    ONNX_INT8,
    ensure_export,
    read_export,
    require_onnxruntime,
)
from distill.machine_cache import machine_cache_dir

Progress = Callable[[int, int], None]


class OnnxEmbedder:
    """A sentence-transformers folder's MiniLM, exported to ONNX and run by ONNX Runtime."""

    def __init__(
        self,
        source: str | Path,
        source_sha256: str,
        *,
        quantized: bool = False,
        cache_root: Path | None = None,
        batch_size: int = 32,
    ) -> None:
        runtime = require_onnxruntime()
        from tokenizers import Tokenizer

        self.name = ONNX_INT8 if quantized else ONNX
        self.batch_size = batch_size
        root = cache_root or machine_cache_dir() / "onnx"
        self.folder = ensure_export(Path(source), source_sha256, self.name, root)
        export = read_export(self.folder)
        assert export is not None  # ensure_export returns a complete folder
        self.dim = export.dim
        self._identity = {
            "name": self.name,
            "dim": export.dim,
            "seed": None,
            "model_hash": source_sha256,
            "recipe": export.recipe,
        }
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(export.max_seq_length)
        options = runtime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are not for users
        self._session = runtime.InferenceSession(
            str(self.folder / export.file), options, providers=["CPUExecutionProvider"]
        )

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Unit-length float32 rows, in input order; the same texts give the same bytes."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 8
        for start in range(0, len(texts), step):
            encodings = self._tokenizer.encode_batch(list(texts[start : start + step]))
            # longest first, as sentence-transformers does: batches of similar length pad less
            order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
            for first in range(0, len(order), self.batch_size):
                rows = order[first : first + self.batch_size]
                out[[start + row for row in rows]] = self._run([encodings[r].ids for r in rows])
            if progress is not None:
                progress(min(start + step, len(texts)), len(texts))
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        vectors: np.ndarray = self._session.run(None, feeds)[0]
        return vectors.astype(np.float32, copy=False)
