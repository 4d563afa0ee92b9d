"""What every audit group reads (the home, the latest run, the embedder) and how it reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from distill.config import Config
from distill.errors import DistillError
from distill.home import Home
from distill.index.embedders import Embedder
from distill.jsonio import iter_raw_lines
from distill.runs.checks import CheckResult, iter_rows, stage_accounting
from distill.schemas import AuditCheck, RunSummary, StageReceipt

BASELINES_FILE = "audit_baselines.jsonl"
OWN_LINE_LIMIT = 1 << 26  # files distill wrote itself: no line is refused for its length
SAMPLE_HEAD = 1000  # without --full: the first 1,000 lines of each file…
SAMPLE_STRIDE = 100  # …then every 100th line
PROVENANCE_GAP_LIMIT = 0.05


@dataclass
class AuditContext:
    """What every group reads: the home, the latest run, and the configured embedder."""

    home: Home
    config: Config
    full: bool = False
    index_uri: str = ""
    make_embedder: Callable[[], Embedder] | None = None
    task: str | None = None
    summary: RunSummary | None = None
    run_folder: Path | None = None
    summary_error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    self_retrieval: tuple[str, bool] | None = None  # set by the replay dry run

    @cached_property
    def embedder(self) -> Embedder:
        if self.make_embedder is None:
            raise DistillError("no embedder configured for the audit")
        return self.make_embedder()

    def stage_params(self, stage: str) -> dict[str, Any]:
        receipts = self.summary.stages if self.summary else []
        return next((r.params for r in receipts if r.stage == stage), {})

    @cached_property
    def scored(self) -> dict[tuple[str, str], str]:
        """(record id, sig_hash) → category, from the files on disk. Copies of a record share its
        id on purpose (the exporter keeps the first), so the id alone does not name one row."""
        return self._scored[0]

    @property
    def scored_counts(self) -> Counter[str]:
        """Scored rows per category, every copy counted (as the score receipt counts them)."""
        return self._scored[1]

    @cached_property
    def _scored(self) -> tuple[dict[tuple[str, str], str], Counter[str]]:
        by_key: dict[tuple[str, str], str] = {}
        counts: Counter[str] = Counter()
        for path in sorted(self.home.scored_dir.glob("*.jsonl")):
            for row in iter_rows(path):
                by_key[(row["id"], row["provenance"]["sig_hash"])] = row["category"]
                counts[row["category"]] += 1
        return by_key, counts

    @cached_property
    def accounting(self) -> dict[str, tuple[str | None, str]]:
        return stage_accounting(self.home, sources=False)


def required(group: str, check: CheckResult) -> AuditCheck:
    return AuditCheck(group=group, name=check.name, level="required", **_result(check))


def info(group: str, check: CheckResult) -> AuditCheck:
    return AuditCheck(group=group, name=check.name, level="info", **_result(check))


def _result(check: CheckResult) -> dict[str, Any]:
    return {"passed": check.passed, "detail": check.detail}


def balance(ctx: AuditContext, stage: str, name: str) -> CheckResult:
    problem, counted = ctx.accounting[stage]
    return CheckResult(name, problem is None, problem or counted)


def validate_file(
    home: Home, path: Path, model: type[BaseModel], *, full: bool
) -> tuple[int, int, list[str]]:
    """Validate a JSONL file we wrote: every line, or a fixed sample. (checked, total, errors)."""
    checked, total, errors = 0, 0, []
    for raw in iter_raw_lines(path, OWN_LINE_LIMIT):
        if raw.data is not None and not raw.data.strip():
            continue
        total += 1
        if not (full or total <= SAMPLE_HEAD or total % SAMPLE_STRIDE == 0):
            continue
        checked += 1
        where = f"{home.relative(path)}:{raw.line_no}"
        if raw.data is None:
            errors.append(f"{where}: line over {OWN_LINE_LIMIT} bytes")
            continue
        try:
            model.model_validate_json(raw.data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(part) for part in first["loc"]) or "(line)"
            errors.append(f"{where}: {loc}: {first['msg']}")
    return checked, total, errors


def receipt_of(ctx: AuditContext, stage: str) -> StageReceipt | None:
    return next((r for r in (ctx.summary.stages if ctx.summary else []) if r.stage == stage), None)
