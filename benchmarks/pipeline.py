"""Pipeline throughput and memory benchmark: collect → score → export rag / sft / preference.

    python benchmarks/pipeline.py [--rows 100000,1000000] [--shapes short,long]
                                  [--out benchmarks/results/pipeline.md] [--seed S]
                                  [--profile] [--keep] [--workdir DIR]

For each shape (``benchmarks/pipeline_corpus.py``: ``short`` rows of 300–800 bytes, ``long``
rows with 0.3–3 KB of text, ~1 % garbage, duplicates, several attempts per task) and each
``--rows`` size, a seeded home is generated and the pipeline runs once in a fresh subprocess.
Each stage runs through the registry with a pinned ``recorded_at`` (as ``tests/conftest.py``
runs it), right after its FLOOR measured in the same process on the same files: that stage's
input files read line by line, each line parsed with orjson, the same bytes written to an output
file, which is fsynced (as every stage fsyncs what it publishes). Targets: total pipeline
≤ 3 × total floor for every run; per shape, peak RSS (the child's VmHWM) at the largest size
≤ 1.5 × at the smallest. A stage's peak is VmHWM after it, reset
(/proc/self/clear_refs) before it where Linux allows.

With ``--profile`` each stage runs once more under cProfile on the smallest size of each shape;
the top functions go to ``<out folder>/profile-<shape>-<stage>.txt`` and a summary into the
report (timings there include the profiler's overhead and are not compared with the floor).

A Markdown report goes to ``--out`` (its folder is git-ignored) and to stdout; progress goes to
stderr. Exit status 0 when every target passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.pipeline_corpus import SHAPES, Shape, generate  # noqa: E402
from benchmarks.pipeline_report import RECORDED_AT, Run, StageResult, render  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.home import Home  # noqa: E402
from distill.stages import StageContext, StageReport, pipeline  # noqa: E402
from distill.stages.registry import stage_named  # noqa: E402

STAGES = tuple(stage.name for stage in pipeline(index=False))  # the registry's, index aside
__all__ = ["generate"]  # chaos.py, ingest.py and engines.py generate their homes with it

# ---------------------------------------------------------------------------------------------
# Floor and stages
# ---------------------------------------------------------------------------------------------


def floor(inputs: list[Path], scratch: Path) -> tuple[float, float, int]:
    """Read each input line by line, orjson-parse it, write the same bytes out and fsync them
    (as every stage fsyncs what it publishes). (seconds, of which fsync, lines)"""
    scratch.mkdir(parents=True, exist_ok=True)
    lines = 0
    synced = 0.0
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    start = time.perf_counter()
    for index, path in enumerate(inputs):
        with open(path, "rb") as src, open(scratch / f"{index}.jsonl", "wb") as dst:
            write = dst.write
            for line in src:
                with contextlib.suppress(decode_error):
                    loads(line)
                write(line)
                lines += 1
            dst.flush()
            before_sync = time.perf_counter()
            os.fsync(dst.fileno())
            synced += time.perf_counter() - before_sync
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch)
    return elapsed, synced, lines


def stage_inputs(home: Home, stage: str) -> list[Path]:
    if stage == "collect":
        return list(home.stream_files().values())
    folder = home.evidence_dir if stage == "score" else home.scored_dir
    return sorted(folder.glob("*.jsonl"))


def run_stage(home: Home, stage: str) -> StageReport:
    """One stage through the registry, exactly as run-all and tests/conftest.py run it."""
    context = StageContext(home, load_config(home.config_path), RECORDED_AT)
    return stage_named(stage).run(context)


def _result(stage: str, seconds: float, report: StageReport, inputs: list[Path]) -> StageResult:
    return StageResult(
        stage=stage,
        seconds=seconds,
        records_in=report.records_in,
        records_out=report.records_out,
        skipped=report.skipped_total,
        quarantined=report.quarantined_total,
        passed=report.passed,
        input_bytes=sum(path.stat().st_size for path in inputs),
        errors=list(report.errors),
    )


def profiled_pipeline(
    home: Home, out_dir: Path, log: Callable[[str], None], prefix: str = ""
) -> dict[str, str]:
    """Rerun each stage under cProfile; write the full top lists, return a short summary each."""
    summaries = {}
    for stage in STAGES:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        run_stage(home, stage)
        profiler.disable()
        elapsed = time.perf_counter() - start
        full = io.StringIO()
        stats = pstats.Stats(profiler, stream=full).strip_dirs()
        full.write(f"# {stage}: {elapsed:.2f}s under cProfile\n\n## by tottime\n")
        stats.sort_stats("tottime").print_stats(30)
        full.write("\n## by cumtime\n")
        stats.sort_stats("cumulative").print_stats(40)
        path = out_dir / f"profile-{prefix}{stage}.txt"
        path.write_text(full.getvalue())
        short = io.StringIO()
        pstats.Stats(profiler, stream=short).strip_dirs().sort_stats("tottime").print_stats(12)
        summaries[stage] = _trim_pstats(short.getvalue(), elapsed)
        log(f"profiled {stage} ({elapsed:.2f}s) → {path}")
    return summaries


def _trim_pstats(text: str, elapsed: float) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    body = [line for line in lines[start:] if line.strip()]
    return f"wall {elapsed:.2f}s under cProfile, top by tottime:\n" + "\n".join(body)


# ---------------------------------------------------------------------------------------------
# One measurement: a fresh child per (shape, size)
# ---------------------------------------------------------------------------------------------


def _vm_hwm_kib() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child_main(home_dir: Path) -> int:
    """Run the pipeline once in this (fresh) process, each stage right after its floor; print one
    JSON line with the stages' results and the peak RSS.

    The peak is VmHWM, the high-water mark of this process's own address space. ``ru_maxrss``
    is reported too but not used: across fork + exec Linux folds the *parent's* peak into the
    child's ``ru_maxrss`` (exec records the old mm's high-water mark), so a small child of a big
    parent reads as big. Where /proc/self/clear_refs is writable the mark is reset before each
    stage (after its floor), which gives each stage's own peak; the lifetime peak is the largest
    reading.
    """
    home = Home(home_dir.resolve())
    baseline = _vm_hwm_kib()
    per_stage_ok = _reset_hwm()
    stages = []
    for stage in STAGES:
        inputs = stage_inputs(home, stage)
        os.sync()  # the previous stage's writeback must not land inside the next measurement
        floor_s, floor_sync_s, floor_lines = floor(inputs, home.root / ".floor")
        os.sync()
        if per_stage_ok:
            _reset_hwm()
        start = time.perf_counter()
        report = run_stage(home, stage)
        result = _result(stage, time.perf_counter() - start, report, inputs)
        result.floor_seconds, result.floor_lines = floor_s, floor_lines
        result.floor_fsync_seconds = floor_sync_s
        result.peak_rss_kib = _vm_hwm_kib()
        _log(f"[child] {stage}: {result.seconds:.1f}s ({result.ratio:.1f}x its floor)")
        stages.append(result.__dict__)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    known = [r for r in [baseline] + [s["peak_rss_kib"] for s in stages] if r is not None]
    line = {
        "peak_kib": max(known) if known else usage.ru_maxrss,
        "peak_source": "VmHWM" if known else "ru_maxrss",
        "ru_maxrss_kib": usage.ru_maxrss,  # Linux: KiB; includes the parent's, see above
        "baseline_kib": baseline,
        "stages": stages,
    }
    print(json.dumps(line))
    return 0


def measure(
    shape: Shape, rows: int, args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> Run:
    """Generate a home of ``rows`` lines of ``shape``, run the pipeline on it in a fresh child."""
    home = workdir / f"{shape.name}-{rows}"
    log(f"{shape.name} {rows:,}: generating into {home}")
    gen = generate(home, rows, args.seed, log, shape)
    log(f"{shape.name} {rows:,}: pipeline in a fresh subprocess")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child-home", str(home)],
        stdout=subprocess.PIPE,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    data = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    profiles = {}
    if args.profile and rows == min(args.rows):
        profiles = profiled_pipeline(Home(home.resolve()), args.out.parent, log, f"{shape.name}-")
    if not args.keep:
        shutil.rmtree(home)
    stages = [StageResult(**stage) for stage in data.pop("stages")]
    return Run(shape=shape, rows=rows, gen=gen, stages=stages, profiles=profiles, **data)


def source_digest() -> str:
    """Which distill code was measured: sha256 over the distill modules this process loaded
    (the pipeline's code path, not unrelated modules edited meanwhile), and their newest mtime."""
    import hashlib

    files = sorted(
        Path(module.__file__)
        for name, module in list(sys.modules.items())
        if (name == "distill" or name.startswith("distill.")) and module.__file__
    )
    digest = hashlib.sha256()
    newest = 0.0
    for path in files:
        with contextlib.suppress(OSError):
            digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
            newest = max(newest, path.stat().st_mtime)
    stamp = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{digest.hexdigest()[:12]} ({len(files)} modules, newest modified {stamp})"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sizes(text: str) -> list[int]:
    return sorted(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def _shapes(text: str) -> list[Shape]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(SHAPES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown shape(s) {unknown}; known: {sorted(SHAPES)}")
    return [SHAPES[name] for name in names]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=_sizes, default=[200_000], help="comma-separated corpus sizes (lines)"
    )
    parser.add_argument(
        "--shapes", type=_shapes, default=[SHAPES["short"]], help="short, long or short,long"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pipeline.md")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--profile", action="store_true", help="also cProfile each stage")
    parser.add_argument("--keep", action="store_true", help="keep the generated homes")
    parser.add_argument("--workdir", type=Path, default=None, help="where homes are generated")
    parser.add_argument("--child-home", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child_home is not None:
        return child_main(args.child_home)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    digest = source_digest()
    workdir = Path(tempfile.mkdtemp(prefix="distill-bench-", dir=args.workdir))
    _log(f"working in {workdir}")
    runs: list[Run] = []
    try:
        for shape in args.shapes:
            for rows in args.rows:
                runs.append(measure(shape, rows, args, workdir, _log))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    end_digest = source_digest()
    if end_digest != digest:
        _log("warning: distill/ changed while the benchmark ran; numbers mix code versions")
        digest += f"; **changed during the run**, at end: {end_digest}"
    text, ok = render(argv, args.seed, runs, digest, STAGES)
    args.out.write_text(text)
    print(text)
    _log(f"report written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
