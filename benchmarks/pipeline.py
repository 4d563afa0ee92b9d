"""Pipeline throughput and memory benchmark: collect → score → export rag / sft / preference.

    python benchmarks/pipeline.py [--rows N] [--memory-rows 100000,1000000]
                                  [--out benchmarks/results/pipeline.md] [--seed S]
                                  [--profile] [--keep]

Three measurements, all on synthetic streams generated here (seeded, so every run sees the
same bytes):

1. Throughput at ``--rows`` (default 200 000): each stage runs through the library functions of
   ``distill.stages`` with a pinned ``recorded_at`` (as ``tests/conftest.py::run_pipeline``
   does) and is compared with a FLOOR measured in the same run on the same files: that stage's
   input files read line by line, each line parsed with orjson, the same bytes written to an
   output file. floor = the sum of that over the five stages. Target: pipeline ≤ 3 × floor.
2. Peak memory: the whole pipeline in a fresh subprocess per ``--memory-rows`` size; peak RSS is
   the child's ``ru_maxrss`` (per stage too, by resetting VmHWM through /proc/self/clear_refs
   where Linux allows it). Target: peak at the largest size ≤ 1.5 × peak at the smallest.
3. With ``--profile``: each stage once more under cProfile; the top functions go to
   ``<out folder>/profile-<stage>.txt`` and a summary into the report (timings there include
   the profiler's overhead and are not compared with the floor).

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
import platform
import pstats
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.home import Home  # noqa: E402
from distill.stages import StageContext, StageReport, pipeline  # noqa: E402
from distill.stages.registry import stage_named  # noqa: E402

RECORDED_AT = "2026-01-01T00:00:00Z"
STAGES = tuple(stage.name for stage in pipeline(index=False))  # the registry's, index aside
TIME_TARGET = 3.0  # total pipeline seconds / total floor seconds
MEMORY_TARGET = 1.5  # peak RSS at the largest size / peak RSS at the smallest
MAX_LINE_BYTES = 4096  # written to the synthetic home's distill.toml, so oversized lines stay small

# ---------------------------------------------------------------------------------------------
# Synthetic streams
# ---------------------------------------------------------------------------------------------

STREAM_WEIGHTS = {
    "scrum_reviews": 20,
    "audits": 12,
    "auto_apply": 12,
    "contract_analyses": 8,
    "observer_reviews": 12,
    "distilled_facts": 8,
    "outcomes": 10,
    "mode_experiments": 10,
    "replay_runs": 8,
}
ID_FIELD = {
    "scrum_reviews": ("review_id", "reviewed_at", "rev"),
    "audits": ("audit_id", "created_at", "aud"),
    "auto_apply": ("apply_id", "applied_at", "app"),
    "contract_analyses": ("analysis_id", "created_at", "ca"),
    "observer_reviews": ("observation_id", "created_at", "obs"),
    "distilled_facts": ("fact_id", "created_at", "fact"),
    "outcomes": ("outcome_id", "created_at", "out"),
    "mode_experiments": ("experiment_id", "created_at", "exp"),
    "replay_runs": ("run_id", "created_at", "run"),
}
TEXT_FIELD = {  # the field padded to reach the row's target size
    "scrum_reviews": "review",
    "audits": "finding",
    "auto_apply": "patch",
    "contract_analyses": "analysis",
    "observer_reviews": "response",
    "distilled_facts": "fact",
    "outcomes": "summary",
    "mode_experiments": "output",
    "replay_runs": "final_answer",
}
SKIP_KINDS = (
    "invalid_json",
    "not_an_object",
    "invalid_utf8",
    "line_too_long",
    "missing_id",
    "missing_timestamp",
    "invalid_timestamp",
)
GARBAGE_RATE = 0.004  # per skip kind: 7 kinds → 2.8 % of the lines
BLANK_RATE = 0.002  # blank lines: ignored by collect, not records
DUPLICATE_RATE = 0.005  # a native id seen earlier in the stream → duplicate_id at export
EMPTY_RATE = 0.003  # empty response → empty_content at export
TASK_POOL = 2000
FACT_ONLY_TASKS = 50  # tasks only facts cite: their facts stay needs_human_review
ROW_BYTES = (300, 800)

_WORDS = (
    "cache retry handler request response timeout token budget schema migration index query "
    "latency worker queue shard replica lock mutex race deadlock config flag rollout canary "
    "metric alert trace span log buffer stream batch commit revert patch diff build test "
    "fixture mock stub coverage lint type error warning panic crash leak memory cpu disk "
    "network socket header payload parser encoder decoder validator serializer adapter client "
    "server endpoint route middleware session cookie auth permission role tenant quota limit "
    "the a an of to in for with on when after before because while unless this that it"
).split()
_VERBS = "fixes adds removes renames guards wraps caches retries validates logs splits".split()
_STEP_VERBS = ("Verify", "Check", "Assert", "Ensure", "Confirm", "verify", "check")
_BULLETS = ("- ", "* ", "1. ", "2) ", "", "[ ] ")
_MODELS = ("gpt-4o", "claude-3-5-sonnet", "qwen2.5-coder-32b", "llama-3.1-70b", "gemma-3-270m")


class Synth:
    """Deterministic text and field generators (one seeded RNG)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.paths = [
            f"{rng.choice(['src', 'lib', 'app', 'pkg', 'services'])}/"
            f"{rng.choice(_WORDS[:60])}/{rng.choice(_WORDS[:60])}_{i}."
            f"{rng.choice(['py', 'ts', 'go', 'rs', 'sql', 'yaml', 'md'])}"
            for i in range(500)
        ]
        self.sentences = [self._sentence() for _ in range(4000)]
        self.steps = [
            f"{rng.choice(_BULLETS)}{rng.choice(_STEP_VERBS)} {self._sentence(4, 10)}"
            for _ in range(800)
        ]
        self.tasks = [f"T-{i:05d}" for i in range(TASK_POOL)]
        self.base_time = datetime(2025, 1, 1, tzinfo=UTC)

    def _sentence(self, low: int = 6, high: int = 18) -> str:
        rng = self.rng
        words = rng.choices(_WORDS, k=rng.randint(low, high))
        roll = rng.random()
        if roll < 0.25:
            words.insert(rng.randint(1, len(words)), rng.choice(self.paths))
        elif roll < 0.30:
            words.insert(rng.randint(1, len(words)), f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}")
        elif roll < 0.33:
            words.insert(rng.randint(1, len(words)), "e.g.")
        return " ".join(words).capitalize() + "."

    def text(self, size: int) -> str:
        """About ``size`` characters of multi-line agent prose with some validation steps."""
        rng = self.rng
        parts: list[str] = []
        total = 0
        while total < size:
            piece = rng.choice(self.steps) if rng.random() < 0.15 else rng.choice(self.sentences)
            parts.append(piece)
            total += len(piece) + 1
        joined = "".join(p + ("\n" if rng.random() < 0.4 else " ") for p in parts)
        cut = joined[:size]
        return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip()  # at a word boundary

    def short(self, low: int = 4, high: int = 10) -> str:
        return " ".join(self.rng.choices(_WORDS, k=self.rng.randint(low, high))).capitalize()

    def time(self) -> str:
        """ISO-8601 in the shapes agents write: Z, offsets, naive, with or without micros."""
        rng = self.rng
        moment = self.base_time + timedelta(seconds=rng.randrange(365 * 86400))
        roll = rng.random()
        if roll < 0.55:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if roll < 0.75:
            offset = timedelta(hours=rng.choice([-7, -5, 1, 2, 5.5, 9]))
            return moment.astimezone(timezone(offset)).isoformat()
        if roll < 0.90:
            return (moment + timedelta(microseconds=rng.randrange(1_000_000))).isoformat()
        return moment.replace(tzinfo=None).isoformat()

    def task(self) -> str:
        return self.tasks[self.rng.randrange(TASK_POOL - FACT_ONLY_TASKS)]


def _pick(rng: random.Random, weighted: dict[Any, float]) -> Any:
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


def base_row(stream: str, synth: Synth) -> dict[str, Any]:
    """One valid row of ``stream`` without its id, time or padded text field."""
    rng = synth.rng
    task = synth.task()
    extra = {"agent": f"agent-{rng.randrange(40)}", "session": f"s-{rng.randrange(10**6):06d}"}
    if stream == "scrum_reviews":
        row: dict[str, Any] = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "model": rng.choice(_MODELS),
            "attempts": rng.choice([1, 1, 1, 2, 3]),
        }
        if rng.random() < 0.85:
            row["prompt"] = f"Review {row['file']}: {synth.short()}"
        verdict = _pick(rng, {"accepted": 45, "rejected": 25, None: 30})
        if verdict:
            row["verdict"] = verdict
        elif rng.random() < 0.7:
            row["markers"] = [rng.choice(["ACCEPT", "PARTIAL", "REJECT"])]
        if rng.random() < 0.1:
            row["tree_split_fired"] = True  # shards filled in by fill_text
    elif stream == "audits":
        row = {
            "task_id": task,
            "phase": rng.choice(["design", "build", "release", "post-mortem"]),
            "topic": f"Audit {synth.short(3, 6).lower()}",
            "severity": _pick(
                rng, {"info": 20, "low": 20, "medium": 25, "high": 20, "critical": 10, "meh": 5}
            ),
            "evidence": synth.short(6, 14),
            "files": rng.sample(synth.paths, rng.randint(0, 3)),
        }
    elif stream == "auto_apply":
        row = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "instruction": f"{rng.choice(_VERBS).capitalize()} {synth.short(3, 8).lower()}",
            "outcome": _pick(
                rng,
                {"committed": 50, "build_red_reverted": 20, "tests_failed": 20, "skipped": 10},
            ),
        }
    elif stream == "contract_analyses":
        row = {
            "task_id": task,
            "contract": f"contracts/{rng.choice(_WORDS[:40])}.sol",
            "verdict": _pick(rng, {"accept": 50, "reject": 35, "unclear": 15}),
        }
        if rng.random() < 0.8:
            row["question"] = f"Is {synth.short(3, 7).lower()} safe?"
    elif stream == "observer_reviews":
        row = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "prompt": f"Observe {synth.short(3, 8).lower()}",
            "notes": synth.short(3, 10),
        }
        verdict = _pick(rng, {"accept": 55, "reject": 35, None: 10})
        if verdict:
            row["verdict"] = verdict
    elif stream == "distilled_facts":
        if rng.random() < 0.1:
            task = synth.tasks[TASK_POOL - 1 - rng.randrange(FACT_ONLY_TASKS)]
        row = {"task_id": task, "origin": rng.choice(["scrum", "audit", "observer", "human"])}
    elif stream == "outcomes":
        row = {
            "task_id": task,
            "outcome": _pick(rng, {"success": 55, "failure": 35, "abandoned": 10}),
        }
    elif stream == "mode_experiments":
        row = {
            "task_id": task,
            "mode": rng.choice(["plan", "act", "reflect", "tree"]),
            "prompt": f"Try {synth.short(3, 8).lower()}",
        }
        if rng.random() < 0.9:
            row["validation_results"] = {
                "grounded_fraction": round(rng.random(), 3),
                "cited": rng.randint(0, 8),
            }
    else:  # replay_runs: another replay tool's rows (no schema tag: they are not replay_run.v1)
        row = {
            "task_id": task,
            "task": f"{rng.choice(_VERBS).capitalize()} {synth.short(4, 9).lower()}",
            "task_hash": f"{rng.getrandbits(64):016x}",
            "verdict": _pick(rng, {"passed": 55, "failed": 35, "pending": 10}),
            "escalated": rng.random() < 0.15,
            "hits": [f"scrum_reviews:rev-{rng.randrange(10**7):08d}" for _ in range(2)],
        }
    row.update(extra)
    return row


def fill_text(stream: str, row: dict[str, Any], synth: Synth, target: int) -> None:
    """Pad the stream's main text field so the serialised row is about ``target`` bytes."""
    name = TEXT_FIELD[stream]
    row[name] = ""
    if stream == "scrum_reviews" and row.get("tree_split_fired"):
        row["shards"] = []
    need = max(40, target - len(orjson.dumps(row)))
    text = synth.text(need)
    if stream == "scrum_reviews" and row.get("tree_split_fired"):
        pieces = [p for p in text.split("\n") if p.strip()] or [text]
        shards = [{"index": i, "text": p} for i, p in enumerate(pieces[:4])]
        synth.rng.shuffle(shards)
        row["shards"] = shards
        row[name] = pieces[0][:60]  # the un-assembled review is a stub
    else:
        row[name] = text


@dataclass
class GenStats:
    lines: int = 0
    bytes: int = 0
    by_stream: Counter[str] = field(default_factory=Counter)
    garbage: Counter[str] = field(default_factory=Counter)


def generate(home: Path, rows: int, seed: int, progress: Callable[[str], None]) -> GenStats:
    """Write ``rows`` lines (records, garbage and blanks) across the nine streams of ``home``."""
    kb = home / "data" / "_kb"
    kb.mkdir(parents=True, exist_ok=True)
    (home / "distill.toml").write_text(f"[collect]\nmax_line_bytes = {MAX_LINE_BYTES}\n")
    synth = Synth(seed)
    rng = synth.rng
    streams = list(STREAM_WEIGHTS)
    weights = list(STREAM_WEIGHTS.values())
    handles = {name: open(kb / f"{name}.jsonl", "wb") for name in streams}  # noqa: SIM115
    counters = dict.fromkeys(streams, 0)
    recent: dict[str, list[str]] = {name: [] for name in streams}
    stats = GenStats()
    try:
        for i in range(rows):
            stream = rng.choices(streams, weights)[0]
            line = _line(stream, synth, counters, recent, stats)
            handles[stream].write(line + b"\n")
            stats.lines += 1
            stats.bytes += len(line) + 1
            stats.by_stream[stream] += 1
            if (i + 1) % 100_000 == 0:
                progress(f"generated {i + 1:,} / {rows:,} lines")
    finally:
        for handle in handles.values():
            handle.close()
    return stats


def _line(
    stream: str,
    synth: Synth,
    counters: dict[str, int],
    recent: dict[str, list[str]],
    stats: GenStats,
) -> bytes:
    rng = synth.rng
    id_field, time_field, prefix = ID_FIELD[stream]
    roll = rng.random()
    if roll < BLANK_RATE:
        stats.garbage["blank"] += 1
        return b""
    roll -= BLANK_RATE
    kind = None
    if roll < GARBAGE_RATE * len(SKIP_KINDS):
        kind = SKIP_KINDS[int(roll / GARBAGE_RATE)]
        stats.garbage[kind] += 1
    if kind == "not_an_object":
        return rng.choice([b'["not", "an", "object"]', b'"a bare string"', b"42", b"null"])
    counters[stream] += 1
    native = f"{prefix}-{counters[stream]:08d}"
    if kind is None and rng.random() < DUPLICATE_RATE and recent[stream]:
        native = rng.choice(recent[stream])  # an agent that wrote the same row twice
        stats.garbage["duplicate_id"] += 1
    else:
        recent[stream].append(native)
        if len(recent[stream]) > 64:
            recent[stream].pop(0)
    row = {id_field: native, time_field: synth.time(), **base_row(stream, synth)}
    target = rng.randint(*ROW_BYTES)
    if kind == "line_too_long":
        target = MAX_LINE_BYTES + rng.randint(200, 2000)
    fill_text(stream, row, synth, target)
    if kind is None and rng.random() < EMPTY_RATE:
        row[TEXT_FIELD[stream]] = "   "
        row.pop("shards", None)
        row.pop("evidence", None)
        stats.garbage["empty_response"] += 1
    if kind == "missing_id":
        del row[id_field]
    elif kind == "missing_timestamp":
        if rng.random() < 0.5:
            del row[time_field]
        else:
            row[time_field] = ""
    elif kind == "invalid_timestamp":
        row[time_field] = rng.choice(["yesterday", "2025-13-45T99:00:00Z", "1700000000"])
    line = orjson.dumps(row)
    if kind == "invalid_json":
        return line[: rng.randint(10, len(line) - 5)]  # a torn write
    if kind == "invalid_utf8":
        cut = line.index(b'"', len(line) // 2)  # inside some string value: corrupt its bytes
        return line[: cut - 1] + b"\xff\xfe" + line[cut - 1 :]
    return line


# ---------------------------------------------------------------------------------------------
# Floor and stages
# ---------------------------------------------------------------------------------------------


def floor(inputs: list[Path], scratch: Path) -> tuple[float, int]:
    """Read each input line by line, orjson-parse it, write the same bytes out. (seconds, lines)"""
    scratch.mkdir(parents=True, exist_ok=True)
    lines = 0
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
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch)
    return elapsed, lines


def stage_inputs(home: Home, stage: str) -> list[Path]:
    if stage == "collect":
        return list(home.stream_files().values())
    folder = home.evidence_dir if stage == "score" else home.scored_dir
    return sorted(folder.glob("*.jsonl"))


def run_stage(home: Home, stage: str) -> StageReport:
    """One stage through the registry, exactly as run-all and tests/conftest.py run it."""
    context = StageContext(home, load_config(home.config_path), RECORDED_AT)
    return stage_named(stage).run(context)


@dataclass
class StageResult:
    stage: str
    seconds: float
    records_in: int
    records_out: int
    skipped: int
    quarantined: int
    passed: bool
    input_bytes: int
    floor_seconds: float = 0.0
    floor_lines: int = 0
    peak_rss_kib: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds if self.floor_seconds else float("inf")

    @property
    def rows_per_s(self) -> float:
        return self.records_in / self.seconds if self.seconds else 0.0


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


def timed_pipeline(home: Home, log: Callable[[str], None]) -> list[StageResult]:
    """Each stage's floor (on its own input files) right before the stage itself."""
    results = []
    for stage in STAGES:
        inputs = stage_inputs(home, stage)
        os.sync()  # the previous stage's writeback must not land inside the next measurement
        floor_s, floor_lines = floor(inputs, home.root / ".floor")
        os.sync()
        log(f"{stage}: floor {floor_s:.2f}s over {floor_lines:,} lines; running the stage")
        start = time.perf_counter()
        report = run_stage(home, stage)
        elapsed = time.perf_counter() - start
        result = _result(stage, elapsed, report, inputs)
        result.floor_seconds, result.floor_lines = floor_s, floor_lines
        log(f"{stage}: {elapsed:.2f}s ({result.ratio:.1f}x floor), {report.records_in:,} in")
        results.append(result)
    return results


def profiled_pipeline(home: Home, out_dir: Path, log: Callable[[str], None]) -> dict[str, str]:
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
        path = out_dir / f"profile-{stage}.txt"
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
# Memory: a fresh child per size
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
    """Run the pipeline once in this (fresh) process; print one JSON line with timings and RSS.

    The peak is VmHWM, the high-water mark of this process's own address space. ``ru_maxrss``
    is reported too but not used: across fork + exec Linux folds the *parent's* peak into the
    child's ``ru_maxrss`` (exec records the old mm's high-water mark), so a small child of a big
    parent reads as big. Where /proc/self/clear_refs is writable the mark is reset before each
    stage, which gives each stage's own peak; the lifetime peak is the largest reading.
    """
    home = Home(home_dir.resolve())
    baseline = _vm_hwm_kib()
    per_stage_ok = _reset_hwm()
    stages = []
    for stage in STAGES:
        if per_stage_ok:
            _reset_hwm()
        inputs = stage_inputs(home, stage)
        _log(f"[child] {stage}: running")
        start = time.perf_counter()
        report = run_stage(home, stage)
        elapsed = time.perf_counter() - start
        result = _result(stage, elapsed, report, inputs)
        result.peak_rss_kib = _vm_hwm_kib()
        _log(f"[child] {stage}: {elapsed:.1f}s, peak {result.peak_rss_kib or '?'} KiB")
        stages.append(result.__dict__)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    readings = [baseline] + [s["peak_rss_kib"] for s in stages]
    known = [r for r in readings if r is not None]
    print(
        json.dumps(
            {
                "peak_kib": max(known) if known else usage.ru_maxrss,
                "peak_source": "VmHWM" if known else "ru_maxrss",
                "ru_maxrss_kib": usage.ru_maxrss,  # Linux: KiB; includes the parent's, see above
                "baseline_kib": baseline,
                "per_stage_peaks": per_stage_ok,
                "stages": stages,
            }
        )
    )
    return 0


@dataclass
class MemoryResult:
    rows: int
    peak_kib: int
    peak_source: str
    ru_maxrss_kib: int
    baseline_kib: int | None
    total_seconds: float
    stages: list[dict[str, Any]]


def memory_run(rows: int, seed: int, workdir: Path, keep: bool) -> MemoryResult:
    home = workdir / f"mem-{rows}"
    _log(f"memory {rows:,}: generating into {home}")
    generate(home, rows, seed, _log)
    _log(f"memory {rows:,}: pipeline in a fresh subprocess")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child-home", str(home)],
        stdout=subprocess.PIPE,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    data = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    if not keep:
        shutil.rmtree(home)
    return MemoryResult(
        rows=rows,
        peak_kib=int(data["peak_kib"]),
        peak_source=data["peak_source"],
        ru_maxrss_kib=int(data["ru_maxrss_kib"]),
        baseline_kib=data["baseline_kib"],
        total_seconds=sum(s["seconds"] for s in data["stages"]),
        stages=data["stages"],
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MiB"


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _machine() -> list[str]:
    import numpy
    import pydantic

    return [
        f"- machine: {describe()}",
        f"- python {platform.python_version()} ({platform.python_implementation()}), "
        f"pydantic {pydantic.VERSION}, orjson {orjson.__version__}, numpy {numpy.__version__}",
    ]


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


def render(
    argv: list[str],
    rows: int,
    seed: int,
    gen: GenStats | None,
    results: list[StageResult],
    memory: list[MemoryResult],
    profiles: dict[str, str],
    digest: str,
) -> tuple[str, bool]:
    ok = True
    out = ["# distill pipeline benchmark", ""]
    out.append(f"- command: `{shlex.join(['python', 'benchmarks/pipeline.py', *argv])}`")
    out.append(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    out += _machine()
    out.append(f"- distill code measured (modules on the pipeline's path): {digest}")
    if gen is not None:
        garbage = ", ".join(f"{k} {v:,}" for k, v in sorted(gen.garbage.items()))
        out.append(
            f"- input: {gen.lines:,} lines ({_size(gen.bytes)}), seed {seed}, nine streams, "
            f"{TASK_POOL:,} task ids; planted: {garbage}"
        )
    out.append(f"- recorded_at pinned to {RECORDED_AT}; stages called as tests/conftest.py does")
    out.append("")
    if results:
        out += [
            f"## Throughput ({rows:,} rows)",
            "",
            "floor = that stage's input files read line by line, each line `orjson.loads`-ed, "
            "the same bytes written to a scratch file (no fsync).",
            "",
            "| stage | rows in | out | skipped | quarantined | input | seconds | rows/s "
            "| floor s | ratio |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for r in results:
            out.append(
                f"| {r.stage} | {r.records_in:,} | {r.records_out:,} | {r.skipped:,} "
                f"| {r.quarantined:,} | {_size(r.input_bytes)} | {r.seconds:.2f} "
                f"| {r.rows_per_s:,.0f} | {r.floor_seconds:.2f} | {r.ratio:.1f}× |"
            )
        total = sum(r.seconds for r in results)
        total_floor = sum(r.floor_seconds for r in results)
        ratio = total / total_floor if total_floor else float("inf")
        time_ok = ratio <= TIME_TARGET
        stages_ok = all(r.passed for r in results)
        ok &= time_ok and stages_ok
        out.append(
            f"| **total** | | | | | | **{total:.2f}** | | **{total_floor:.2f}** "
            f"| **{ratio:.1f}×** |"
        )
        out.append("")
        for r in results:
            for err in r.errors:
                out.append(f"- stage {r.stage} error: {err}")
    if memory:
        out += [
            "## Peak memory (fresh subprocess per size)",
            "",
            "peak = the child's own high-water mark (VmHWM) over the whole pipeline; a stage's "
            "peak is VmHWM read after it, reset (/proc/self/clear_refs) before it, so it "
            "includes what earlier stages left allocated. The child's `ru_maxrss` is shown for "
            "reference only: after fork + exec Linux folds the parent's peak into it.",
            "",
            "| rows | pipeline s | baseline (imports) | "
            + " | ".join(f"{s} peak" for s in STAGES)
            + " | **peak RSS** | ru_maxrss |",
            "|--:|--:|--:|" + "--:|" * len(STAGES) + "--:|--:|",
        ]
        for m in memory:
            per = {s["stage"]: s.get("peak_rss_kib") for s in m.stages}
            out.append(
                f"| {m.rows:,} | {m.total_seconds:.1f} | {_mib(m.baseline_kib)} | "
                + " | ".join(_mib(per.get(s)) for s in STAGES)
                + f" | **{_mib(m.peak_kib)}** ({m.peak_source}) | {_mib(m.ru_maxrss_kib)} |"
            )
        out.append("")
        out.append("Per-stage seconds in the memory runs (throughput check on scaling):")
        out.append("")
        out.append("| rows | " + " | ".join(STAGES) + " |")
        out.append("|--:|" + "--:|" * len(STAGES))
        for m in memory:
            secs = {s["stage"]: s["seconds"] for s in m.stages}
            out.append(f"| {m.rows:,} | " + " | ".join(f"{secs[s]:.1f}" for s in STAGES) + " |")
        out.append("")
    out += ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    if results:
        out.append(
            f"| pipeline ≤ {TIME_TARGET:g}× floor | {ratio:.2f}× | "
            f"{'PASS' if time_ok else 'FAIL'} |"
        )
        out.append(
            f"| every stage passed (row accounting, re-read) | "
            f"{sum(r.passed for r in results)}/{len(results)} | "
            f"{'PASS' if stages_ok else 'FAIL'} |"
        )
    if len(memory) >= 2:
        small, large = memory[0], memory[-1]
        mem_ratio = large.peak_kib / small.peak_kib
        mem_ok = mem_ratio <= MEMORY_TARGET
        ok &= mem_ok
        out.append(
            f"| peak RSS at {large.rows:,} ≤ {MEMORY_TARGET:g}× peak at {small.rows:,} "
            f"| {_mib(large.peak_kib)} / {_mib(small.peak_kib)} = {mem_ratio:.2f}× "
            f"| {'PASS' if mem_ok else 'FAIL'} |"
        )
    out.append("")
    if profiles:
        out += ["## cProfile (separate run; includes profiler overhead)", ""]
        for stage, text in profiles.items():
            out += [f"### {stage}", "", "```", text, "```", ""]
    return "\n".join(out) + "\n", ok


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sizes(text: str) -> list[int]:
    return sorted(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="lines for the timing run")
    parser.add_argument(
        "--memory-rows",
        type=_sizes,
        default=[100_000, 1_000_000],
        help="comma-separated sizes for the peak-memory runs ('' to skip)",
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
    gen: GenStats | None = None
    results: list[StageResult] = []
    profiles: dict[str, str] = {}
    memory: list[MemoryResult] = []
    try:
        if args.rows > 0:
            root = workdir / f"time-{args.rows}"
            _log(f"timing run: generating {args.rows:,} lines")
            gen = generate(root, args.rows, args.seed, _log)
            home = Home(root.resolve())
            results = timed_pipeline(home, _log)
            if args.profile:
                profiles = profiled_pipeline(home, args.out.parent, _log)
            if not args.keep:
                shutil.rmtree(root)
        for rows in args.memory_rows:
            memory.append(memory_run(rows, args.seed, workdir, args.keep))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    end_digest = source_digest()
    if end_digest != digest:
        _log("warning: distill/ changed while the benchmark ran; numbers mix code versions")
        digest += f"; **changed during the run**, at end: {end_digest}"
    text, ok = render(argv, args.rows, args.seed, gen, results, memory, profiles, digest)
    args.out.write_text(text)
    print(text)
    _log(f"report written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
