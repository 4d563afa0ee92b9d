"""release-freeze: rerun the gates, and write a release as a manifest of hashes. Never tags.

The working tree is checked first, before the freeze writes its own reports, so the verdict is
about the tree as the operator left it.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import distill
from distill.clock import utc_now
from distill.config import Config
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import write_bytes_atomic
from distill.runs.acceptance import AcceptanceReport
from distill.runs.audit import AuditOptions, acceptance_in_tmp, run_audit, write_audit_report
from distill.runs.receipts import code_hash, digest_files, git_sha
from distill.runs.runner import find_run, load_summary
from distill.runs.summary import md_cell
from distill.schemas import (
    AuditReport,
    DriftReport,
    GateResult,
    ReleaseDataset,
    ReleaseIndex,
    ReleaseManifest,
)

MANIFEST_NAME = "release-manifest.json"
PREVIOUS_MANIFEST_NAME = "release-manifest.previous.json"
REPORT_NAME = "release-freeze.md"


@dataclass
class ReleaseResult:
    gates: list[GateResult]
    acceptance: AcceptanceReport
    audit: AuditReport
    manifest: ReleaseManifest | None  # None when a gate failed: a refused release has no manifest
    report_path: Path
    manifest_path: Path | None

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)


def release_freeze(
    home: Home,
    config: Config,
    audit_options: AuditOptions,
    *,
    version: str | None = None,
    acceptance: Callable[[], AcceptanceReport] = acceptance_in_tmp,
    on_step: Callable[[str], None] | None = None,
) -> ReleaseResult:
    """Check the tree, rerun acceptance and audit-full, judge the gates, write the manifest."""
    step = on_step or (lambda _: None)
    tree = _tree_gate(home.root)
    step("acceptance")
    accepted = acceptance()
    step("audit-full")
    audit = run_audit(home, config, audit_options, acceptance=lambda: accepted)
    write_audit_report(home, audit)
    gates = [
        GateResult(
            name="acceptance passed",
            passed=accepted.passed,
            detail=f"{sum(c.passed for c in accepted.checks)}/{len(accepted.checks)} invariants",
        ),
        _group_gate(audit, "audit-full required checks passed", None),
        _group_gate(audit, "index in sync with the RAG export", "index"),
        _group_gate(audit, "the latest run's receipts are valid", "receipts"),
        tree,
        _drift_gate(home),
    ]
    manifest = None
    manifest_path = None
    stale = home.reports_dir / MANIFEST_NAME
    if not all(gate.passed for gate in gates) and stale.is_file():
        # a refused freeze leaves no release-manifest.json that could be taken for this release
        stale.replace(home.reports_dir / PREVIOUS_MANIFEST_NAME)
    if all(gate.passed for gate in gates):
        manifest = _manifest(home, audit_options, gates, version)
        manifest_path = home.reports_dir / MANIFEST_NAME
        write_bytes_atomic(
            manifest_path, manifest.model_dump_json(by_alias=True, indent=2).encode() + b"\n"
        )
    report_path = home.reports_dir / REPORT_NAME
    result = ReleaseResult(gates, accepted, audit, manifest, report_path, manifest_path)
    write_bytes_atomic(report_path, render_release_md(result).encode())
    return result


def _group_gate(audit: AuditReport, name: str, group: str | None) -> GateResult:
    required = [c for c in audit.checks if c.level == "required"]
    if group is not None:
        required = [c for c in required if c.group == group]
    failed = [f"{c.group}: {c.name}" for c in required if not c.passed]
    return GateResult(
        name=name,
        passed=bool(required) and not failed,
        detail=f"failed: {'; '.join(failed[:5])}"
        if failed
        else f"{len(required)} check(s) pass"
        if required
        else "no check ran",
    )


def _tree_gate(folder: Path) -> GateResult:
    name = "working tree clean"
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=normal"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return GateResult(name=name, passed=True, detail=f"git unavailable ({err}); not checked")
    if result.returncode != 0:
        if "not a git repository" in result.stderr:
            return GateResult(name=name, passed=True, detail="not a git work tree; not checked")
        # any other failure (dubious ownership, a broken index…) must not pass as "clean"
        why = result.stderr.strip().splitlines()[0] if result.stderr.strip() else "no output"
        return GateResult(name=name, passed=False, detail=f"git status failed: {why}")
    dirty = [line[3:] for line in result.stdout.splitlines() if line.strip()]
    return GateResult(
        name=name,
        passed=not dirty,
        detail=f"{len(dirty)} uncommitted path(s): {', '.join(dirty[:5])}" if dirty else "clean",
    )


def _drift_gate(home: Home) -> GateResult:
    name = "no determinism alert in the latest drift"
    try:
        folder = find_run(home, None)
        drift = DriftReport.model_validate_json((folder / "drift.json").read_bytes())
    except DistillError as err:  # no run at all
        return GateResult(name=name, passed=False, detail=str(err))
    except (OSError, ValueError) as err:  # pydantic's ValidationError is a ValueError
        return GateResult(name=name, passed=False, detail=f"latest drift.json unreadable: {err}")
    alerts = [f for f in drift.findings if f.level == "alert" or f.kind == "determinism"]
    return GateResult(
        name=name,
        passed=drift.level != "alert" and not alerts,
        detail=f"{drift.level}: {drift.message}",
    )


def _manifest(
    home: Home, options: AuditOptions, gates: list[GateResult], version: str | None
) -> ReleaseManifest:
    # imported when called: only what reads the index loads it, so other commands start faster
    from distill.index import PlaybookStore
    from distill.index.store import resolve_index_uri

    summary = load_summary(find_run(home, None))
    assert summary.run_hash is not None  # the receipts gate passed: the run completed
    datasets = []
    for name in ("rag", "sft", "preference"):
        for digest in digest_files(home, [home.export_path(name)]):
            datasets.append(ReleaseDataset(name=name, **digest.model_dump()))
    quarantine = {}
    for name in ("rag", "sft", "preference"):
        digests = digest_files(home, [home.quarantine_path(name)])
        quarantine[name] = digests[0].records if digests else 0
    uri = resolve_index_uri(options.index_uri, home.index_dir)
    store = PlaybookStore(uri)
    index_manifest = store.require_manifest()
    version = version or f"data-{summary.run_hash[:12]}"
    sha = git_sha(home.root)
    return ReleaseManifest(
        version=version,
        created_at=utc_now(),
        git_sha=sha,
        distill_version=distill.__version__,
        code_hash=code_hash(),
        run_id=summary.run_id,
        run_hash=summary.run_hash,
        recorded_at=summary.recorded_at,
        datasets=datasets,
        quarantine=quarantine,
        index=ReleaseIndex(
            uri=home.relative(Path(uri)) if "://" not in uri else uri,
            version=index_manifest.version,
            rows=index_manifest.rows,
            embedder=index_manifest.embedder,
            manifest_sha256=store.manifest_sha256(),
        ),
        gates=gates,
        tag_command=_tag_command(home, version, sha, summary.run_hash),
    )


def _tag_command(home: Home, version: str, sha: str | None, run_hash: str) -> str:
    if sha is None:
        return ""
    message = f"distill release {version} (run_hash {run_hash})"
    return (
        f"git -C {shlex.quote(str(home.root))} tag -a {shlex.quote(version)} {sha} "
        f"-m {shlex.quote(message)}"
    )


def render_release_md(result: ReleaseResult) -> str:
    verdict = "FROZEN" if result.passed else "REFUSED"
    failed = [g.name for g in result.gates if not g.passed]
    lines = [
        "# distill release-freeze",
        "",
        f"**{verdict}**"
        + (f": failed gate(s): {', '.join(failed)}." if failed else ": every gate passed."),
        "",
        "| gate | result | detail |",
        "|---|---|---|",
    ]
    for gate in result.gates:
        verdict = "pass" if gate.passed else "**FAIL**"
        lines.append(f"| {gate.name} | {verdict} | {md_cell(gate.detail)} |")
    manifest = result.manifest
    if manifest is None:
        lines += [
            "",
            f"No manifest was written: fix the failed gates and rerun. An earlier "
            f"{MANIFEST_NAME}, if there was one, is now {PREVIOUS_MANIFEST_NAME}.",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Release `{manifest.version}`: run `{manifest.run_id}`, run_hash `{manifest.run_hash}`, "
        f"git `{manifest.git_sha or 'not in git'}`.",
        "",
        "| dataset | records | bytes | sha256 |",
        "|---|---|---|---|",
    ]
    for d in manifest.datasets:
        lines.append(f"| {d.path} | {d.records:,} | {d.bytes:,} | `{d.sha256}` |")
    index = manifest.index
    lines += [
        "",
        f"Index: `{index.uri}` version {index.version}, {index.rows:,} rows, embedder "
        f"`{index.embedder.get('name')}` (dim {index.embedder.get('dim')}).",
        "",
    ]
    if manifest.tag_command:
        lines += ["Tag it (distill never tags by itself):", "", "```", manifest.tag_command, "```"]
    else:
        lines.append("The home is not in git: no tag command.")
    return "\n".join(lines) + "\n"
