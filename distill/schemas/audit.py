"""audit_report.v1, audit_baseline.v1, release_manifest.v1: what the gates leave behind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from distill.schemas.common import Record, Sha256Hex

CheckLevel = Literal["required", "info"]
AUDIT_GROUPS = (
    "recon",
    "schemas",
    "evidence",
    "scoring",
    "exports",
    "receipts",
    "acceptance",
    "index",
    "replay",
)


class AuditCheck(Record):
    group: str = Field(description="the stage it looks at: " + ", ".join(AUDIT_GROUPS))
    name: str
    level: CheckLevel = Field(description="a failed required check fails the audit")
    passed: bool
    detail: str = ""


class MetricDrift(Record):
    metric: str
    baseline: float | None = Field(description="None: no earlier audit measured it")
    current: float
    change: float | None = Field(description="relative change, (current - baseline) / baseline")
    drifted: bool


class AuditBaseline(Record):
    """One row of data/_kb/audit_baselines.jsonl: the metrics one audit measured."""

    schema_: Literal["audit_baseline.v1"] = Field(default="audit_baseline.v1", alias="schema")
    created_at: str
    run_id: str | None = Field(description="the latest run-all the audit looked at")
    git_sha: str | None
    metrics: dict[str, float]


class AuditReport(Record):
    schema_: Literal["audit_report.v1"] = Field(default="audit_report.v1", alias="schema")
    created_at: str
    run_id: str | None
    passed: bool = Field(description="every required check passed")
    full: bool = Field(description="schemas validated line by line, not sampled")
    checks: list[AuditCheck]
    metrics: dict[str, float]
    threshold: float
    baseline_created_at: str | None = Field(description="the baseline drift is measured against")
    drift: list[MetricDrift]


class ReleaseDataset(Record):
    name: str
    path: str = Field(description="relative to the home, POSIX-style")
    sha256: Sha256Hex
    records: int = Field(ge=0)
    bytes: int = Field(ge=0)


class ReleaseIndex(Record):
    uri: str
    version: int
    rows: int
    embedder: dict[str, Any]
    manifest_sha256: Sha256Hex


class GateResult(Record):
    name: str
    passed: bool
    detail: str = ""


class ReleaseManifest(Record):
    """reports/distillation/release-manifest.json: a release is these hashes, nothing else."""

    schema_: Literal["release_manifest.v1"] = Field(default="release_manifest.v1", alias="schema")
    version: str
    created_at: str
    git_sha: str | None
    distill_version: str
    code_hash: Sha256Hex
    run_id: str
    run_hash: Sha256Hex
    recorded_at: str
    datasets: list[ReleaseDataset]
    quarantine: dict[str, int] = Field(description="export → quarantined rows")
    index: ReleaseIndex
    gates: list[GateResult]
    tag_command: str
