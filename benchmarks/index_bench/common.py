"""What every part of the index benchmark shares: its options, targets and the hybrid fusion."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from distill.index.search import DEFAULT_ALPHA, DEFAULT_FUSION, RRF_K, Fusion

REPO = Path(__file__).resolve().parent.parent.parent
BUILD_TARGET = 0.85  # build docs/s ÷ raw encode docs/s, at least
UPDATE_TARGET = 0.05  # update seconds ÷ full build seconds, at most
UPDATE_FRACTION = 0.01
LATENCY_TARGET = 2.0  # hybrid p50 ÷ baseline hybrid p50, at most
TOP_K = 10
WARMUP_QUERIES = 10
RECORDED_AT = "2026-01-01T00:00:00Z"


def log(msg: str) -> None:
    """Progress, to stderr."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Fuse:
    """The hybrid fusion both LanceDB and the baseline use (passed explicitly to every hybrid
    call, so the two sides always agree)."""

    fusion: Fusion = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA

    def kwargs(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "alpha": self.alpha}

    def label(self) -> str:
        if self.fusion == "rrf":
            return f"RRF, K={RRF_K}"
        return f"{self.fusion}, alpha {self.alpha:g}"


@dataclass(frozen=True)
class Options:
    """The command line, typed."""

    rows: int
    build_rows: int
    queries: int
    ann_threshold: int
    blas_threads: int
    skip_minilm_query: bool
    skip_large_update: bool
    minilm_ann: bool
    fuse: Fuse
    seed: int
    out: Path
    workdir: Path | None
    keep: bool
