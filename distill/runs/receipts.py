"""Turn a StageReport into a validated StageReceipt; hash files the same way everywhere."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from distill.home import Home
from distill.jsonio import canonical_json, count_lines, file_sha256
from distill.schemas import FileDigest, StageCounts, StageReceipt, StageValidation
from distill.stage_report import StageReport


def digest_files(home: Home, paths: list[Path]) -> list[FileDigest]:
    digests = []
    for path in paths:
        if path.is_file():
            digests.append(
                FileDigest(
                    path=home.relative(path),
                    sha256=file_sha256(path),
                    records=count_lines(path),
                    bytes=path.stat().st_size,
                )
            )
    return sorted(digests, key=lambda digest: digest.path)


def aggregate_hash(files: list[FileDigest], params: dict[str, Any] | None = None) -> str:
    """Independent of file order; changes when any path, any byte or any parameter changes."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path):
        digest.update(f"{item.path}\0{item.sha256}\n".encode())
    if params is not None:
        digest.update(canonical_json(params))
    return digest.hexdigest()


@functools.cache
def code_hash() -> str:
    """sha256 over distill's own source files: the same code gives the same hash."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def git_sha(folder: Path) -> str | None:
    """HEAD of the git work tree holding ``folder``, if there is one."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and len(sha) == 40 else None


def receipt_from_report(
    home: Home,
    run_id: str,
    report: StageReport,
    *,
    sha: str | None,
    started: str,
    ended: str,
    duration: float,
) -> StageReceipt:
    inputs = digest_files(home, report.inputs)
    outputs = digest_files(home, report.outputs)
    params = {key: _portable(home, value) for key, value in report.params.items()}
    return StageReceipt(
        run_id=run_id,
        stage=report.stage,
        status="passed" if report.passed else "failed",
        reason=None if report.passed else (report.errors[0] if report.errors else "failed"),
        git_sha=sha,
        code_hash=code_hash(),
        params=params,
        inputs=inputs,
        outputs=outputs,
        input_hash=aggregate_hash(inputs, params),
        output_hash=report.content_hash or aggregate_hash(outputs),
        counts=StageCounts(
            records_in=report.records_in,
            records_out=report.records_out,
            skipped=dict(sorted(report.skipped.items())),
            quarantined=dict(sorted(report.quarantined.items())),
            out_by_category=dict(sorted(report.out_by_category.items())),
        ),
        validation=StageValidation(
            passed=report.passed,
            errors=report.errors,
            warnings=report.warnings,
            checks=dict(sorted(report.checks.items())),
        ),
        extra={k: v for k, v in report.extra.items()},
        started_at=started,
        ended_at=ended,
        duration_s=round(duration, 4),
    )


def _portable(home: Home, value: Any) -> Any:
    """A path inside the home is recorded relative to it, so receipts compare across homes."""
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        if path.is_relative_to(home.root):
            return path.relative_to(home.root).as_posix() or "."
    return value


def failed_receipt(
    run_id: str,
    stage: str,
    errors: list[str],
    *,
    sha: str | None,
    params: dict[str, Any],
    started: str,
    ended: str,
    duration: float,
) -> StageReceipt:
    """A stage that raised before it could report: no counts, the errors say why."""
    return StageReceipt(
        run_id=run_id,
        stage=stage,
        status="failed",
        reason=errors[0] if errors else "failed",
        git_sha=sha,
        code_hash=code_hash(),
        params=params,
        inputs=[],
        outputs=[],
        input_hash=None,
        output_hash=None,
        counts=None,
        validation=StageValidation(passed=False, errors=errors),
        started_at=started,
        ended_at=ended,
        duration_s=round(duration, 4),
    )


def not_run_receipt(run_id: str, stage: str, reason: str, *, sha: str | None) -> StageReceipt:
    return StageReceipt(
        run_id=run_id,
        stage=stage,
        status="not_run",
        reason=reason,
        git_sha=sha,
        code_hash=code_hash(),
        params={},
        inputs=[],
        outputs=[],
        input_hash=None,
        output_hash=None,
        counts=None,
        validation=StageValidation(passed=False, errors=[reason]),
        started_at=None,
        ended_at=None,
        duration_s=None,
    )
