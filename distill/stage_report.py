"""Bookkeeping every stage shares: counts by reason, outputs, checks, and the accounting rule.

Its own module, below both the stages and the index, so that the index stage, the receipts and
the CLI import the report without importing the stages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageReport:
    """What a stage did. ``records_in == records_out + skipped + quarantined`` must hold."""

    stage: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    records_in: int = 0
    records_out: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    out_by_category: Counter[str] = field(default_factory=Counter)
    checks: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    content_hash: str | None = None  # for outputs that are not files (the index table)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        return self.records_in == self.records_out + self.skipped_total + self.quarantined_total

    @property
    def passed(self) -> bool:
        return self.balanced and not self.errors

    def close(self) -> StageReport:
        """Check the accounting rule; a stage that lost a row says so in its errors."""
        self.checks["row_accounting"] = "passed" if self.balanced else "failed"
        if not self.balanced:
            self.errors.append(
                f"row accounting: in={self.records_in} != out={self.records_out} "
                f"+ skipped={self.skipped_total} + quarantined={self.quarantined_total}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "params": self.params,
            "dry_run": self.dry_run,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "skipped": dict(sorted(self.skipped.items())),
            "quarantined": dict(sorted(self.quarantined.items())),
            "out_by_category": dict(sorted(self.out_by_category.items())),
            "checks": dict(sorted(self.checks.items())),
            "passed": self.passed,
            "errors": self.errors,
            "warnings": self.warnings,
            "outputs": [str(path) for path in self.outputs],
            **self.extra,
        }
