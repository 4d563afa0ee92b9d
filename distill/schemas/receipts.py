"""stage_receipt.v1, run_summary.v1, drift_report.v1: what run-all leaves behind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from distill.schemas.common import Record, Sha256Hex

StageStatus = Literal["passed", "failed", "not_run"]
DriftLevel = Literal["ok", "warn", "alert", "first_run"]


class FileDigest(Record):
    path: str = Field(description="relative to the home, POSIX-style")
    sha256: Sha256Hex
    records: int = Field(ge=0)
    bytes: int = Field(ge=0)


class StageCounts(Record):
    records_in: int = Field(ge=0)
    records_out: int = Field(ge=0)
    skipped: dict[str, int] = Field(default_factory=dict)
    quarantined: dict[str, int] = Field(default_factory=dict)
    out_by_category: dict[str, int] = Field(default_factory=dict)


class StageValidation(Record):
    passed: bool
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    checks: dict[str, str] = Field(default_factory=dict)


class StageReceipt(Record):
    """One stage of one run: what went in, what came out, and whether it held."""

    schema_: Literal["stage_receipt.v1"] = Field(default="stage_receipt.v1", alias="schema")
    run_id: str
    stage: str
    status: StageStatus
    reason: str | None = Field(default=None, description="why the stage failed or did not run")
    git_sha: str | None
    code_hash: Sha256Hex | None = Field(
        default=None, description="sha256 of distill's own source files"
    )
    params: dict[str, Any]
    inputs: list[FileDigest]
    outputs: list[FileDigest]
    input_hash: Sha256Hex | None = Field(description="files (path + sha256) and params, any order")
    output_hash: Sha256Hex | None
    counts: StageCounts | None
    validation: StageValidation
    extra: dict[str, Any] = Field(default_factory=dict)
    started_at: str | None
    ended_at: str | None
    duration_s: float | None


class DatasetInfo(Record):
    name: str
    path: str
    records: int
    sha256: Sha256Hex


class RunSummary(Record):
    schema_: Literal["run_summary.v1"] = Field(default="run_summary.v1", alias="schema")
    run_id: str
    recorded_at: str
    git_sha: str | None
    passed: bool
    failed_stage: str | None
    run_hash: Sha256Hex | None = Field(description="sha256 over the stages' output hashes")
    stages: list[StageReceipt]
    datasets: list[DatasetInfo]
    quarantine: dict[str, dict[str, int]] = Field(description="export → reason → count")
    warnings: list[str] = Field(
        default_factory=list,
        description="what a passed run still tells its reader (an empty index)",
    )
    drift_level: DriftLevel
    started_at: str
    ended_at: str


class DriftFinding(Record):
    level: Literal["warn", "alert"]
    stage: str
    kind: Literal["count", "category", "new_error_class", "determinism", "code_change"]
    metric: str
    previous: float | str | None
    current: float | str | None
    change: float | None = None
    message: str


class DriftReport(Record):
    schema_: Literal["drift_report.v1"] = Field(default="drift_report.v1", alias="schema")
    run_id: str
    previous_run_id: str | None
    threshold: float
    level: DriftLevel
    findings: list[DriftFinding]
    message: str
