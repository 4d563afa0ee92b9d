"""The local engine against the Ray engine on one machine: run-all and an index build.

    python benchmarks/engines.py [--rows 200000] [--index-docs 1000] [--embedder minilm]
                                 [--seed 0] [--shape short|long]
                                 [--out benchmarks/results/engines.md]
                                 [--workdir DIR] [--keep]

1. run-all without the index on ``--rows`` synthetic rows (the seeded corpus of
   ``benchmarks/pipeline.py``, ``--shape`` short (default) or long: nine streams, planted
   skips, duplicates and empty responses),
   once with ``--engine local`` (before Ray is started) and twice with ``--engine ray`` on a
   local Ray started here with every CPU: the first Ray run pays for starting Ray's worker
   processes, the second does not.
   Per stage: seconds (from the receipts) and µs per row; Ray's own start-up is timed on its
   own. Every output file and the run_hash must be identical across the three runs. The local
   run is also timed around the stages' work functions: each row's cost splits into what Ray
   spreads over its workers and what stays in the driver (reading, writing, the duplicate scan,
   the re-read of each export).
2. An index build of the first ``--index-docs`` playbooks of that RAG export with the real
   embedder, here (before Ray is started) and on Ray actors (one model load each, part of the
   Ray time): docs/s, and the largest difference between the two builds' vectors.
3. Extrapolations to 10M rows and 1M playbooks, linear in the costs above, labelled as such.

On an idle single machine Ray can only add overhead (its workers share the driver's cores):
the point is to measure that overhead and the per-row costs a cluster would divide. On a
machine shared with other jobs, Ray's several processes get a larger share of the cores than
the local engine's one, which can make Ray look faster: the load average at the start and the
end is in the report. A Markdown report goes to ``--out`` (its folder is git-ignored) and
stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.engines_report import BuildTimes, Measured, RunTimes, render  # noqa: E402
from benchmarks.pipeline_corpus import SHAPES, generate  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.engine import LOCAL, Engine, EngineName, open_engine  # noqa: E402
from distill.home import SKIPS_FILE, Home  # noqa: E402
from distill.index import PlaybookStore  # noqa: E402
from distill.index.embedders import Embedder, Progress  # noqa: E402
from distill.index.stage import index_export  # noqa: E402
from distill.runs import RunOptions, run_all  # noqa: E402

RECORDED_AT = "2026-01-01T00:00:00Z"
S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def log(message: str) -> None:
    print(f"[engines] {message}", file=sys.stderr, flush=True)


class TimedLocal:
    """The local engine, timing the work functions (what Ray spreads over its workers) apart
    from everything else a stage does (what stays in the driver)."""

    def __init__(self) -> None:
        self.work = 0.0

    @property
    def name(self) -> EngineName:
        return EngineName.local

    def map(
        self, work: Callable[[S, list[T]], list[R]], shared: S, items: Iterable[T]
    ) -> Iterator[R]:
        for item in items:
            start = time.perf_counter()
            results = work(shared, [item])
            self.work += time.perf_counter() - start
            yield from results

    def embedder(self, name: str | None, seed: int) -> Embedder:
        return TimedEmbedder(LOCAL.embedder(name, seed), self)

    def describe(self) -> dict[str, Any]:
        return LOCAL.describe()


class TimedEmbedder:
    """An embedder whose ``embed`` time is added to its engine's work time."""

    def __init__(self, inner: Embedder, engine: TimedLocal) -> None:
        self.inner, self.engine = inner, engine
        self.name, self.dim = inner.name, inner.dim

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        start = time.perf_counter()
        vectors = self.inner.embed(texts, progress)
        self.engine.work += time.perf_counter() - start
        return vectors


def outputs(home: Home) -> dict[str, bytes]:
    found = [home.kb_dir / SKIPS_FILE]
    for folder in (home.evidence_dir, home.scored_dir, home.exports_dir):
        found += sorted(path for path in folder.rglob("*") if path.is_file())
    return {home.relative(path): path.read_bytes() for path in found if path.is_file()}


def timed_run(label: str, corpus: Path, workdir: Path, engine: Engine) -> tuple[RunTimes, Home]:
    root = workdir / label
    shutil.copytree(corpus, root)
    home = Home(root.resolve())
    options = RunOptions(recorded_at=RECORDED_AT, index=False, engine=engine)
    marks: list[tuple[str, float]] = []  # each stage's start, in the work seconds so far
    timed = engine if isinstance(engine, TimedLocal) else None
    log(f"run-all, {label}…")
    clock = time.perf_counter()
    result = run_all(
        home,
        load_config(home.config_path),
        options,
        on_stage=lambda stage: marks.append((stage, timed.work if timed else 0.0)),
    )
    times = RunTimes(label, time.perf_counter() - clock, run_hash=result.summary.run_hash)
    if not result.summary.passed:
        raise SystemExit(f"{label}: run failed at {result.summary.failed_stage}")
    for receipt in result.receipts:
        rows = receipt.counts.records_in if receipt.counts else 0
        times.stages[receipt.stage] = (receipt.duration_s or 0.0, rows)
    if timed is not None:
        ends = [start for _, start in marks[1:]] + [timed.work]
        times.work = {stage: end - start for (stage, start), end in zip(marks, ends, strict=True)}
    log(f"  {times.wall:.1f} s")
    return times, home


def index_home(source: Home, folder: Path, docs: int) -> Home:
    rag = source.export_path("rag")
    with open(rag, "rb") as handle:
        lines = [line for _, line in zip(range(docs), handle, strict=False)]
    home = Home(folder.resolve())
    home.export_path("rag").parent.mkdir(parents=True)
    home.export_path("rag").write_bytes(b"".join(lines))
    return home


def timed_build(label: str, home: Home, engine: Engine, embedder: str) -> BuildTimes:
    log(f"index build, {label}…")
    before = engine.work if isinstance(engine, TimedLocal) else 0.0
    clock = time.perf_counter()
    report, _ = index_export(home, str(home.index_dir), engine.embedder(embedder, 0))
    seconds = time.perf_counter() - clock
    if not report.passed:
        raise SystemExit(f"{label}: index build failed: {report.errors}")
    log(f"  {seconds:.1f} s")
    embed = engine.work - before if isinstance(engine, TimedLocal) else 0.0
    return BuildTimes(label, seconds, report.records_in, embed)


def vectors(home: Home) -> dict[str, np.ndarray]:
    rows = PlaybookStore(str(home.index_dir)).open().to_arrow().to_pylist()
    return {row["id"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--index-docs", type=int, default=1_000)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="short", help="row shape")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "engines.md")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated homes")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, workdir: Path) -> Measured:
    """Local first (Ray not started yet), then Ray: run-all twice and the index build."""
    load = loadavg()
    stats = generate(workdir / "corpus", args.rows, args.seed, log, SHAPES[args.shape])
    log(f"generated {stats.lines:,} lines, {stats.bytes / 1e6:.0f} MB")
    local, local_home = timed_run("local", workdir / "corpus", workdir, TimedLocal())
    index_homes = [index_home(local_home, workdir / f"index-{n}", args.index_docs) for n in "lr"]
    builds = [timed_build("local", index_homes[0], TimedLocal(), args.embedder)]
    clock = time.perf_counter()
    with open_engine("ray") as ray:
        ray_start = time.perf_counter() - clock
        log(f"Ray started in {ray_start:.1f} s")
        cold, cold_home = timed_run("ray-cold", workdir / "corpus", workdir, ray)
        warm, warm_home = timed_run("ray-warm", workdir / "corpus", workdir, ray)
        actors = int(ray.describe()["cpus"])
        builds.append(timed_build(f"ray ({actors} actors)", index_homes[1], ray, args.embedder))
        builds[-1].actors = actors
    expected = outputs(local_home)
    identical = outputs(cold_home) == expected == outputs(warm_home)
    identical = identical and local.run_hash == cold.run_hash == warm.run_hash
    mine, theirs = (vectors(home) for home in index_homes)
    delta = max(float(np.abs(mine[key] - theirs[key]).max()) for key in mine)
    stores = [PlaybookStore(str(home.index_dir)) for home in index_homes]
    same = stores[0].require_manifest() == stores[1].require_manifest()
    same = same and mine.keys() == theirs.keys()
    runs = [local, cold, warm]
    return Measured(runs, ray_start, identical, builds, delta, same, [load, loadavg()])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix="distill-engines-", dir=args.workdir))
    try:
        measured = measure(args, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report = render(args.rows, args.embedder, measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    sys.stdout.write(report)
    return 0 if measured.identical and measured.manifests_equal else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
