"""The Markdown report: machine, build and update, query latency, diagnosis, recall, targets."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import shlex
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.index_bench.build import BuildResult
from benchmarks.index_bench.common import (
    BUILD_TARGET,
    REPO,
    UPDATE_FRACTION,
    UPDATE_TARGET,
    Fuse,
)
from benchmarks.index_bench.latency import SearchResult
from benchmarks.index_bench.report_search import Target, recall_rows, search_section, search_targets
from benchmarks.machine import describe

VERSIONS = (
    "torch sentence-transformers transformers lancedb pylance pyarrow bm25s numpy threadpoolctl"
).split()


@dataclass
class Run:
    """What the report says about the run itself."""

    argv: list[str]
    threads: str
    load: tuple[str, str]  # load average at start and end
    digest: str
    fuse: Fuse


def source_digest() -> str:
    """sha256 of distill/index's sources: which code was measured."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "distill" / "index").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in VERSIONS:
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def header(run: Run) -> list[str]:
    return [
        "# distill index benchmark",
        "",
        f"- command: `{shlex.join(['python', 'benchmarks/index.py', *run.argv])}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {describe()}; python {platform.python_version()}",
        f"- {_versions()}",
        f"- threads: {run.threads}",
        f"- load average at start / end: {run.load[0]} / {run.load[1]}",
        f"- distill/index source digest: {run.digest}",
        "- input: synthetic playbooks (seeded), `instruction\\n\\nresponse` of 200–800 chars, "
        "a ~3 000-word project vocabulary with a long tail; queries: half 4–7 consecutive words "
        "of a playbook, half topical phrases",
        "",
    ]


def _build_table(build: BuildResult) -> list[str]:
    n = build.rows
    rate = n / build.build.seconds
    out = [
        f"## Build and update: {n:,} playbooks, all-MiniLM-L6-v2",
        "",
        f"Texts: mean {build.mean_chars:.0f} chars, {build.mean_tokens:.0f} tokens "
        f"(max_seq_length {build.max_seq_length}; {build.truncated} truncated). Model load "
        f"{build.load_s:.1f}s (not counted).",
        "",
        "| step | seconds | docs/s |",
        "|---|--:|--:|",
        f"| raw `model.encode` (batch {build.batch_size}), before the build "
        f"| {build.raw_s[0]:.2f} | {n / build.raw_s[0]:.1f} |",
        f"| raw `model.encode`, after the build | {build.raw_s[1]:.2f} "
        f"| {n / build.raw_s[1]:.1f} |",
        f"| **`PlaybookStore.build`** (embed + write + FTS index + manifest) "
        f"| **{build.build.seconds:.2f}** | **{rate:.1f}** |",
        f"| **`PlaybookStore.update`**, {build.changed} rows changed "
        f"| **{build.update.seconds:.2f}** | |",
        "",
        "Where the time goes:",
        "",
        "| phase | build s | update s |",
        "|---|--:|--:|",
    ]
    phases, uphases = dict(build.build.breakdown()), dict(build.update.breakdown())
    for name in dict.fromkeys([*phases, *uphases]):
        out.append(f"| {name} | {phases.get(name, 0.0):.3f} | {uphases.get(name, 0.0):.3f} |")
    return out


def _build_notes(build: BuildResult) -> list[str]:
    r = build.update.report
    checks = "; ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in build.checks.items())
    out = [
        "",
        f"Update report: rows {r.rows}, embedded {r.embedded}, inserted {r.inserted}, "
        f"updated {r.updated}, deleted {r.deleted}, unchanged {r.unchanged}; " + checks,
    ]
    spread = max(build.raw_s) / min(build.raw_s) - 1
    if spread > 0.10:
        out.append(
            f"\n**Noise:** the two raw encodes differ by {spread:.0%}; the machine was "
            "not quiet (see the load average), so the build ratio is not trustworthy."
        )
    if build.ann_recall is not None:
        out += [
            "",
            f"Informative: the store's HNSW-SQ config trained on these {build.rows:,} MiniLM "
            "vectors (index added to the scratch table after the measurements), recall@10 "
            "against exact cosine over MiniLM-embedded queries:",
            "",
            "| vector query | recall@10 | tie-aware | p50 ms |",
            "|---|--:|--:|--:|",
            *recall_rows(build.ann_recall),
        ]
    return [*out, ""]


def build_targets(build: BuildResult) -> list[Target]:
    n, r = build.rows, build.update.report
    raw_rate = n / statistics.fmean(build.raw_s)
    build_rate = n / build.build.seconds
    ratio = build_rate / raw_rate
    upd_ratio = build.update.seconds / build.build.seconds
    return [
        (
            f"build rate ≥ {BUILD_TARGET:g}× raw encode rate ({n:,} docs, MiniLM)",
            f"{build_rate:.1f} vs {raw_rate:.1f} docs/s = {ratio:.2f}×",
            ratio >= BUILD_TARGET,
        ),
        (
            f"update embeds exactly the {build.changed} changed rows",
            f"embedded {r.embedded}, updated {r.updated}, inserted {r.inserted}, "
            f"deleted {r.deleted}, unchanged {r.unchanged}",
            all(build.checks.values()),
        ),
        (
            f"update ({UPDATE_FRACTION:.0%} changed) ≤ {UPDATE_TARGET:.0%} of the build",
            f"{build.update.seconds:.2f}s / {build.build.seconds:.2f}s = {upd_ratio:.1%}",
            upd_ratio <= UPDATE_TARGET,
        ),
    ]


def build_section(build: BuildResult) -> list[str]:
    return _build_table(build) + _build_notes(build)


def targets_section(targets: list[Target]) -> tuple[list[str], bool]:
    out = ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    for name, measured, passed in targets:
        out.append(f"| {name} | {measured} | {'report' if passed is None else _verdict(passed)} |")
    return [*out, ""], all(passed is not False for _, _, passed in targets)


def render(run: Run, build: BuildResult | None, search: SearchResult | None) -> tuple[str, bool]:
    """The report's text, and whether every target passed."""
    out, targets = header(run), []
    if build is not None:
        out += build_section(build)
        targets += build_targets(build)
    if search is not None:
        out += search_section(search, run.fuse)
        targets += search_targets(search)
    lines, ok = targets_section(targets)
    return "\n".join(out + lines), ok
