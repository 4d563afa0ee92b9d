"""The report of ``benchmarks/engines.py``: what was measured, and what it extrapolates to.

Every extrapolation is linear in rows (or documents) from the costs measured here and is
labelled as such in the report; none was measured at that size.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from benchmarks.machine import describe
from distill.index.store import DEFAULT_ANN_THRESHOLD

SCALE_ROWS = 10_000_000
SCALE_DOCS = 1_000_000
WORKER_CPUS = (8, 32, 128)
ANN_ROWS = DEFAULT_ANN_THRESHOLD  # an index build past it also builds the ANN index


@dataclass
class RunTimes:
    """One run-all: wall seconds, per stage (seconds, rows in), the run_hash."""

    label: str
    wall: float
    stages: dict[str, tuple[float, int]] = field(default_factory=dict)
    run_hash: str | None = None
    work: dict[str, float] = field(default_factory=dict)  # local: seconds in work functions

    def per_row(self) -> tuple[float, float]:
        """Seconds per input row summed over the stages: (in the driver, in work functions)."""
        driver = work = 0.0
        for stage, (seconds, rows) in self.stages.items():
            if rows:
                driver += (seconds - self.work.get(stage, 0.0)) / rows
                work += self.work.get(stage, 0.0) / rows
        return driver, work


@dataclass
class BuildTimes:
    label: str
    seconds: float
    docs: int
    embed: float = 0.0  # local: seconds in embed()
    actors: int = 0  # Ray: the actor pool

    @property
    def rate(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0


@dataclass
class Measured:
    runs: list[RunTimes]
    ray_start: float
    identical: bool
    builds: list[BuildTimes]
    max_delta: float
    manifests_equal: bool
    load: list[str]


def stage_rows(runs: list[RunTimes]) -> Iterator[str]:
    local = runs[0]
    for stage, (seconds, rows) in local.stages.items():
        cells = [f"{seconds:.2f}", f"{seconds / rows * 1e6:.0f}" if rows else "-"]
        for other in runs[1:]:
            theirs = other.stages[stage][0]
            cells.append(f"{theirs:.2f} ({theirs / seconds:.2f}×)" if seconds else f"{theirs:.2f}")
        yield f"| {stage} | {rows:,} | " + " | ".join(cells) + " |"
    total = sum(seconds for seconds, _ in local.stages.values())
    walls = [f"{run.wall:.1f} ({run.wall / local.wall:.2f}×)" for run in runs[1:]]
    yield f"| **run-all (wall)** | | **{local.wall:.1f}** | | " + " | ".join(walls) + " |"
    yield f"| (sum of stages) | | {total:.1f} | | | |"


def split_rows(local: RunTimes) -> Iterator[str]:
    """Per stage: µs per row, in the work functions (Ray spreads it) and in the driver."""
    for stage, (seconds, rows) in local.stages.items():
        if not rows:
            continue
        total, work = seconds / rows * 1e6, local.work.get(stage, 0.0) / rows * 1e6
        yield f"| {stage} | {total:.0f} | {work:.0f} ({work / total:.0%}) | {total - work:.0f} |"
    driver, work = local.per_row()
    total = (driver + work) * 1e6
    yield f"| **all stages** | **{total:.0f}** | **{work * 1e6:.0f}** | **{driver * 1e6:.0f}** |"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def scale_lines(local: RunTimes, builds: list[BuildTimes]) -> Iterator[str]:
    """10M log rows and 1M playbooks, from the costs above: extrapolated, never measured."""
    driver, work = local.per_row()
    yield (
        "Extrapolated (linear, from the per-row costs above; not measured at this size): "
        f"{SCALE_ROWS:,} log rows through run-all's five stages:"
    )
    yield ""
    yield f"- local engine: {_hours(SCALE_ROWS * (driver + work))}"
    for cpus in WORKER_CPUS:
        estimate = SCALE_ROWS * (driver + work / cpus)
        yield f"- Ray, {cpus} worker CPUs: ≥ {_hours(estimate)} (driver + work ÷ {cpus})"
    yield f"- the driver alone, however many workers: {_hours(SCALE_ROWS * driver)}"
    local_build, ray_build = builds
    per_doc_driver = (local_build.seconds - local_build.embed) / local_build.docs
    yield ""
    yield f"{SCALE_DOCS:,} playbooks through an index build:"
    yield ""
    yield f"- local engine: {_hours(SCALE_DOCS * local_build.seconds / local_build.docs)}"
    ray_embed = ray_build.seconds - per_doc_driver * ray_build.docs
    if ray_embed <= 0.05 * ray_build.seconds:  # embedding is noise here (the hashing embedder)
        yield "- Ray: not extrapolated (embedding is a negligible part of this build)"
        return
    per_actor = ray_build.docs / ray_embed / max(ray_build.actors, 1)  # start-up included
    for actors in WORKER_CPUS:
        estimate = SCALE_DOCS * per_doc_driver + SCALE_DOCS / (actors * per_actor)
        yield f"- Ray, {actors} actors: ≥ {_hours(estimate)}"
    ann = "included" if local_build.docs >= ANN_ROWS else f"not included (built from {ANN_ROWS:,})"
    yield (
        f"  (per actor {per_actor:.1f} docs/s as measured here, start-up included; the driver's "
        f"{per_doc_driver * 1000:.1f} ms/doc for loading the model, reading, writing the rows "
        f"and the indexes, fixed costs included; the ANN index {ann})"
    )


def render(rows: int, embedder: str, measured: Measured) -> str:
    runs, builds = measured.runs, measured.builds
    local_build = builds[0]
    embed_ms = local_build.embed / local_build.docs * 1000
    rest_ms = (local_build.seconds - local_build.embed) / local_build.docs * 1000
    lines = [
        "# Engines: local vs Ray on one machine",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine: {describe()}; load average at start / end: {measured.load[0]} / "
        f"{measured.load[1]} (above the core count: the machine was shared).",
        "",
        f"## run-all (no index), {rows:,} rows",
        "",
        f"Ray start-up (a local Ray with every CPU): {measured.ray_start:.1f} s, not in the "
        "runs below. Outputs and run_hash identical across the three runs: "
        f"**{'yes' if measured.identical else 'NO'}** (run_hash {runs[0].run_hash}).",
        "",
        "| stage | rows in | local s | local µs/row | Ray, first run s | Ray, second run s |",
        "|---|--:|--:|--:|--:|--:|",
        *stage_rows(runs),
        "",
        "Where a row's time goes in the local run (timed around the work functions):",
        "",
        "| stage | µs/row | in work functions (Ray spreads it) | in the driver (stays) |",
        "|---|--:|--:|--:|",
        *split_rows(runs[0]),
        "",
        f"## Index build, {local_build.docs:,} playbooks, {embedder}",
        "",
        "| engine | seconds | docs/s | ms/doc |",
        "|---|--:|--:|--:|",
        *(f"| {b.label} | {b.seconds:.1f} | {b.rate:.1f} | {1000 / b.rate:.1f} |" for b in builds),
        "",
        f"Local: {embed_ms:.1f} ms/doc embedding, {rest_ms:.1f} ms/doc the rest (loading the "
        "model, reading, LanceDB rows, indexes, manifest). The Ray time includes starting the "
        "actors and "
        f"loading one model in each. Largest |local − Ray| over every vector component: "
        f"{measured.max_delta:.2e}; manifests and ids equal: "
        f"{'yes' if measured.manifests_equal else 'NO'}.",
        "",
        "## At scale (extrapolated)",
        "",
        *scale_lines(runs[0], builds),
    ]
    return "\n".join(lines) + "\n"
