"""The index benchmark's command line: options, BLAS threads, the run, the report."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.index_bench.build import BuildResult, measure_build
from benchmarks.index_bench.common import REPO, Fuse, Options, log
from benchmarks.index_bench.latency import SearchResult, measure_search
from benchmarks.index_bench.report import Run, render, source_digest
from distill.index.store import DEFAULT_ANN_THRESHOLD

DESCRIPTION = "Index benchmark: build rate, incremental update, query latency and ANN recall."


def _sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rows",
        type=int,
        default=100_000,
        help="rows of the latency/ANN table (hash-384); 0 skips it",
    )
    p.add_argument(
        "--build-rows",
        type=int,
        default=2_000,
        help="rows of the MiniLM build/update measurement; 0 skips it",
    )
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ann-threshold", type=int, default=DEFAULT_ANN_THRESHOLD)
    p.add_argument(
        "--blas-threads", type=int, default=1,
        help="numpy's BLAS threads (threadpoolctl); 0 leaves them alone",
    )  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    _sizes(p)
    p.add_argument("--skip-minilm-query", action="store_true")
    p.add_argument("--skip-large-update", action="store_true")
    p.add_argument(
        "--no-minilm-ann",
        dest="minilm_ann",
        action="store_false",
        help="skip the informative HNSW-SQ recall check on MiniLM vectors",
    )
    p.add_argument(
        "--fusion", choices=("rrf", "weighted"), default=None,
        help="hybrid fusion for LanceDB and the baseline (default: the Retriever's default)",
    )  # fmt: skip
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/index.md")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    return p


def parse_args(argv: list[str]) -> Options:
    args = parser().parse_args(argv)
    default = Fuse()
    fuse = Fuse(
        fusion=default.fusion if args.fusion is None else args.fusion,
        alpha=default.alpha if args.alpha is None else args.alpha,
    )
    return Options(
        rows=args.rows,
        build_rows=args.build_rows,
        queries=args.queries,
        ann_threshold=args.ann_threshold,
        blas_threads=args.blas_threads,
        skip_minilm_query=args.skip_minilm_query,
        skip_large_update=args.skip_large_update,
        minilm_ann=args.minilm_ann,
        fuse=fuse,
        seed=args.seed,
        out=args.out,
        workdir=args.workdir,
        keep=args.keep,
    )


def _threads(blas: int) -> tuple[str, Any]:
    """Pin numpy's BLAS to ``blas`` threads for the run; torch keeps its own OpenMP threads."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

    limiter = threadpool_limits(limits=blas, user_api="blas") if blas > 0 else None
    pools = ", ".join(
        f"{p['internal_api']} ({p['prefix']}) {p['num_threads']}" for p in threadpool_info()
    )
    return f"torch {torch.get_num_threads()} intra-op; {pools}", limiter


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _measure(options: Options) -> tuple[BuildResult | None, SearchResult | None]:
    workdir = Path(tempfile.mkdtemp(prefix="distill-index-bench-", dir=options.workdir))
    log(f"working in {workdir}")
    build = search = None
    try:
        if options.build_rows > 0:
            build = measure_build(options, workdir)
        if options.rows > 0:
            search = measure_search(options, workdir)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return build, search


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every target passed, 1 otherwise."""
    argv = sys.argv[1:] if argv is None else argv
    options = parse_args(argv)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    threads, _limiter = _threads(options.blas_threads)
    log(f"threads: {threads}")
    load_start, digest = _loadavg(), source_digest()
    build, search = _measure(options)
    load_end, end_digest = _loadavg(), source_digest()
    if end_digest != digest:
        log("warning: distill/index changed while the benchmark ran")
        digest += f"; **changed during the run**, at end: {end_digest}"
    run = Run(argv, threads, (load_start, load_end), digest, options.fuse)
    text, ok = render(run, build, search)
    options.out.write_text(text)
    print(text)
    log(f"report written to {options.out}")
    return 0 if ok else 1
