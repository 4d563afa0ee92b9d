"""The pipeline benchmark's results and its Markdown report (see ``benchmarks/pipeline.py``)."""

from __future__ import annotations

import platform
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from benchmarks.machine import describe
from benchmarks.pipeline_corpus import GenStats, Shape

RECORDED_AT = "2026-01-01T00:00:00Z"
TIME_TARGET = 3.0  # total pipeline seconds / total floor seconds
MEMORY_TARGET = 1.5  # peak RSS at the largest size / peak RSS at the smallest


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
    floor_fsync_seconds: float = 0.0  # the part of floor_seconds spent in fsync
    floor_lines: int = 0
    peak_rss_kib: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds if self.floor_seconds else float("inf")


@dataclass
class Run:
    """One (shape, size): the stages, each beside its floor, and the peak memory."""

    shape: Shape
    rows: int
    gen: GenStats
    stages: list[StageResult]
    peak_kib: int
    peak_source: str
    ru_maxrss_kib: int
    baseline_kib: int | None
    profiles: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)

    @property
    def floor(self) -> float:
        return sum(stage.floor_seconds for stage in self.stages)

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor if self.floor else float("inf")

    @property
    def ratio_unsynced(self) -> float:
        """Against the floor less its fsync (a stricter floor: the stages' fsyncs stay in)."""
        unsynced = self.floor - sum(stage.floor_fsync_seconds for stage in self.stages)
        return self.seconds / unsynced if unsynced > 0 else float("inf")


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MiB"


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _machine() -> list[str]:
    import msgspec
    import numpy
    import pydantic

    return [
        f"- machine: {describe()}",
        f"- python {platform.python_version()} ({platform.python_implementation()}), "
        f"pydantic {pydantic.VERSION}, msgspec {msgspec.__version__}, "
        f"orjson {orjson.__version__}, numpy {numpy.__version__}",
    ]


def _summary(runs: list[Run], stages: tuple[str, ...]) -> list[str]:
    out = [
        "| shape | rows | input | "
        + " | ".join(stages)
        + " | **total** (pipeline s / floor s) | total, floor less its fsync | **peak RSS** |",
        "|---|--:|--:|" + "--:|" * len(stages) + "--:|--:|--:|",
    ]
    for run in runs:
        ratios = {stage.stage: f"{stage.ratio:.1f}×" for stage in run.stages}
        out.append(
            f"| {run.shape.name} | {run.rows:,} | {_size(run.gen.bytes)} | "
            + " | ".join(ratios.get(stage, "n/a") for stage in stages)
            + f" | **{run.ratio:.2f}×** ({run.seconds:.1f} / {run.floor:.1f}) "
            f"| {run.ratio_unsynced:.2f}× | **{_mib(run.peak_kib)}** |"
        )
    return out


def _detail(run: Run) -> list[str]:
    garbage = ", ".join(f"{k} {v:,}" for k, v in sorted(run.gen.garbage.items()))
    out = [
        f"### {run.shape.name}, {run.rows:,} rows",
        "",
        f"{run.gen.lines:,} lines ({_size(run.gen.bytes)}); planted: {garbage}. Peak RSS "
        f"{_mib(run.peak_kib)} ({run.peak_source}; imports alone {_mib(run.baseline_kib)}; "
        f"ru_maxrss {_mib(run.ru_maxrss_kib)}, which includes the parent's).",
        "",
        "| stage | rows in | out | skipped | quarantined | input | seconds | floor s "
        "| of which fsync | ratio | stage peak |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in run.stages:
        out.append(
            f"| {r.stage} | {r.records_in:,} | {r.records_out:,} | {r.skipped:,} "
            f"| {r.quarantined:,} | {_size(r.input_bytes)} | {r.seconds:.2f} "
            f"| {r.floor_seconds:.2f} | {r.floor_fsync_seconds:.2f} | {r.ratio:.1f}× "
            f"| {_mib(r.peak_rss_kib)} |"
        )
    out += [f"- stage {r.stage} error: {err}" for r in run.stages for err in r.errors]
    return out + [""]


def _targets(runs: list[Run]) -> tuple[list[str], bool]:
    out = ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    ok = True
    for run in runs:
        passed = run.ratio <= TIME_TARGET
        ok &= passed
        out.append(
            f"| {run.shape.name} {run.rows:,}: pipeline ≤ {TIME_TARGET:g}× floor "
            f"| {run.ratio:.2f}× | {'PASS' if passed else 'FAIL'} |"
        )
    for shape in dict.fromkeys(run.shape for run in runs):
        sized = [run for run in runs if run.shape == shape]
        if len(sized) < 2:
            continue
        small, large = sized[0], sized[-1]
        ratio = large.peak_kib / small.peak_kib
        ok &= ratio <= MEMORY_TARGET
        out.append(
            f"| {shape.name}: peak RSS at {large.rows:,} ≤ {MEMORY_TARGET:g}× peak at "
            f"{small.rows:,} | {_mib(large.peak_kib)} / {_mib(small.peak_kib)} = {ratio:.2f}× "
            f"| {'PASS' if ratio <= MEMORY_TARGET else 'FAIL'} |"
        )
    stages = [stage for run in runs for stage in run.stages]
    good = sum(stage.passed for stage in stages)
    ok &= good == len(stages)
    out.append(
        f"| every stage passed (row accounting, re-read) | {good}/{len(stages)} "
        f"| {'PASS' if good == len(stages) else 'FAIL'} |"
    )
    return out + [""], ok


def render(
    argv: list[str], seed: int, runs: list[Run], digest: str, stages: tuple[str, ...]
) -> tuple[str, bool]:
    """The Markdown report, and whether every target passed."""
    out = ["# distill pipeline benchmark", ""]
    out.append(f"- command: `{shlex.join(['python', 'benchmarks/pipeline.py', *argv])}`")
    out.append(f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    out += _machine()
    out.append(f"- distill code measured (modules on the pipeline's path): {digest}")
    out.append(f"- seed {seed}; nine streams; recorded_at pinned to {RECORDED_AT}")
    for shape in dict.fromkeys(run.shape for run in runs):
        out.append(f"- shape {shape.describe()}")
    out += [
        "- floor = each stage's input files read line by line, each line `orjson.loads`-ed, the "
        "same bytes written to a scratch file and fsynced; measured in the same process right "
        "before the stage. The total is also given against the floor less its fsync (the "
        "stages' own fsyncs stay in their time), a stricter measure; the targets use the "
        "floor as defined. Each (shape, rows) runs in a fresh subprocess; peak RSS is its "
        "VmHWM.",
        "",
        "## Ratio to the floor, per stage and in total",
        "",
        *_summary(runs, stages),
        "",
        "## Per run",
        "",
    ]
    for run in runs:
        out += _detail(run)
    targets, ok = _targets(runs)
    out += targets
    for run in runs:
        if run.profiles:
            out += [f"## cProfile: {run.shape.name}, {run.rows:,} rows (includes its overhead)", ""]
            for stage, text in run.profiles.items():
                out += [f"### {stage}", "", "```", text, "```", ""]
    return "\n".join(out) + "\n", ok
