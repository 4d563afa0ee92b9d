"""export rag / export sft: the two record-per-row datasets behind the firewall."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from distill.config import Config, load_config
from distill.engine import LOCAL, Engine
from distill.errors import ValidationFailed, format_validation_error
from distill.home import Home
from distill.jsonio import (
    RawLine,
    atomic_writer,
    validated_line,
)
from distill.limits import LineLimits
from distill.schemas import Category, ExportName, QuarantineReason, RagSample, SftSample
from distill.schemas.fast import (
    RagChecked,
    ScoredRow,
    SftChecked,
    provenance_dict,
)
from distill.stage_report import StageReport
from distill.stages.firewall import (
    Firewall,
    Judged,
    QuarantineSink,
    Refusal,
    candidate_lines,
    firewall_for,
    path_check_notes,
    repo_roots,
    scored_files,
)
from distill.stages.reread import reread_check as reread_check  # the exporters'
from distill.stages.reread import row_origin
from distill.text import title_of

S = TypeVar("S", bound=msgspec.Struct)
A, P, H, R = (
    Category.accepted,
    Category.partially_accepted,
    Category.needs_human_review,
    Category.rejected,
)


def export_rag(
    home: Home,
    *,
    recorded_at: str,
    include_review: bool = False,
    repo_root: Path | None = None,
    dry_run: bool = False,
    config: Config | None = None,
    engine: Engine = LOCAL,
) -> StageReport:
    """Playbooks: accepted + partially accepted (+ needs_human_review with ``include_review``).

    ``config`` (default: the home's distill.toml) sets the line limits and the repo fields.
    """
    allowed = {A, P, H} if include_review else {A, P}
    policy = rag_policy(allowed)

    def check(sample: RagChecked) -> str | None:
        return None if sample.category in allowed else f"{sample.id} is {sample.category}"

    params = {"include_review": include_review}
    return _export(
        home,
        "rag",
        policy,
        rag_payload,
        RagSample,
        check,
        view=RagChecked,
        params=params,
        recorded_at=recorded_at,
        repo_root=repo_root,
        dry_run=dry_run,
        config=config,
        engine=engine,
    )


def export_sft(
    home: Home,
    *,
    recorded_at: str,
    include_partial: bool = False,
    repo_root: Path | None = None,
    dry_run: bool = False,
    config: Config | None = None,
    engine: Engine = LOCAL,
) -> StageReport:
    """TRL prompt/completion pairs: accepted only (+ partially accepted with ``include_partial``).

    rejected and needs_human_review never enter, whatever the flags.
    """
    allowed = {A, P} if include_partial else {A}
    policy = sft_policy(allowed)

    def check(sample: SftChecked) -> str | None:
        ok = sample.quality_score in allowed
        return None if ok else f"{sample.id} has quality_score {sample.quality_score}"

    params = {"include_partial": include_partial}
    return _export(
        home,
        "sft",
        policy,
        sft_payload,
        SftSample,
        check,
        view=SftChecked,
        params=params,
        recorded_at=recorded_at,
        repo_root=repo_root,
        dry_run=dry_run,
        config=config,
        engine=engine,
    )


def rag_policy(allowed: set[Category]) -> Callable[[ScoredRow], Refusal]:
    """Never rejected; needs_human_review only when allowed."""

    def policy(record: ScoredRow) -> Refusal:
        if record.category is R:
            return QuarantineReason.unsafe_rag_category, "rejected runs never enter RAG"
        if record.category not in allowed:
            return QuarantineReason.category_disallowed, "needs_human_review (see --include-review)"
        return None

    return policy


def sft_policy(allowed: set[Category]) -> Callable[[ScoredRow], Refusal]:
    """Never rejected or needs_human_review; partially_accepted only when allowed."""

    def policy(record: ScoredRow) -> Refusal:
        if record.category in (R, H):
            return QuarantineReason.unsafe_sft_category, f"{record.category} never enters SFT"
        if record.category not in allowed:
            detail = "partially_accepted (see --include-partial)"
            return QuarantineReason.category_disallowed, detail
        return None

    return policy


def rag_payload(record: ScoredRow, recorded_at: str) -> dict[str, Any]:
    """A playbook (rag_sample.v1) from an admitted scored run."""
    return {
        "schema": "rag_sample.v1",
        "id": record.id,
        "title": title_of(record.instruction),
        "text": f"{record.instruction.strip()}\n\n{record.response.strip()}",
        "instruction": record.instruction,
        "response": record.response,
        "category": str(record.category),
        "source": record.stream,
        "task_id": record.task_id,
        "file_paths": record.file_paths,
        "validation_steps": record.validation_steps,
        "provenance": provenance_payload(record, recorded_at),
    }


def sft_payload(record: ScoredRow, recorded_at: str) -> dict[str, Any]:
    """A prompt/completion pair (sft_sample.v1) from an admitted scored run."""
    return {
        "schema": "sft_sample.v1",
        "id": record.id,
        "prompt": [{"role": "user", "content": record.instruction}],
        "completion": [{"role": "assistant", "content": record.response}],
        "quality_score": str(record.category),  # the type refuses the rest
        "task_id": record.task_id,
        "provenance": provenance_payload(record, recorded_at),
    }


def _export(
    home: Home,
    export: ExportName,
    policy: Callable[[ScoredRow], Refusal],
    build: Callable[[ScoredRow, str], dict[str, Any]],
    model: type[BaseModel],
    check: Callable[[S], str | None],
    *,
    view: type[msgspec.Struct],
    params: Mapping[str, object],
    recorded_at: str,
    repo_root: Path | None,
    dry_run: bool,
    config: Config | None,
    engine: Engine,
) -> StageReport:
    report = StageReport(
        f"export_{export}",
        dry_run=dry_run,
        params={
            **params,
            "recorded_at": recorded_at,
            "repo_root": str(repo_root) if repo_root else None,
        },
    )
    files = scored_files(home)
    report.inputs = files
    config = config or load_config(home.config_path)
    limits, roots = LineLimits.of(config), repo_roots(repo_root, config)
    out_path, quarantine_path = home.export_path(export), home.quarantine_path(export)
    firewall = firewall_for(
        export, home, files, roots, recorded_at=recorded_at, limits=limits, before=(policy,)
    )
    with contextlib.ExitStack() as stack:
        write = quarantine = None
        if not dry_run:
            verify = reread_check(model, check, export, limits.export, view=view)
            # entered first, so it exits last: a refused export aborts its quarantine too
            quarantine = stack.enter_context(atomic_writer(quarantine_path)).write
            write = stack.enter_context(atomic_writer(out_path, verify=verify)).write
        sink = QuarantineSink(export, recorded_at, quarantine)
        work = SampleWork(firewall, model, build)
        for judged in engine.map(sample_rows, work, candidate_lines(files, limits)):
            report.records_in += 1
            sink.take(judged, roots)
            if judged.line is None or judged.category is None:
                continue
            report.records_out += 1
            report.out_by_category[judged.category] += 1
            if write is not None:
                write(judged.line)
    report.quarantined = sink.records
    path_check_notes(report, roots)
    report.checks["reread"] = "skipped (dry run)" if dry_run else "passed"
    if not dry_run:
        report.outputs = [out_path, quarantine_path]
    return report.close()


@dataclass(frozen=True)
class SampleWork:
    """What the RAG or SFT export does to a line, shipped to the engine that does it."""

    firewall: Firewall
    model: type[BaseModel]
    build: Callable[[ScoredRow, str], dict[str, Any]]


def sample_rows(work: SampleWork, lines: list[tuple[int, RawLine]]) -> list[Judged]:
    """The firewall and the record type, on either engine: each scored-run line → its sample
    line, or its quarantine line."""
    return [_sample_row(work, file_index, raw) for file_index, raw in lines]


def _sample_row(work: SampleWork, file_index: int, raw: RawLine) -> Judged:
    firewall = work.firewall
    admitted, judged = firewall.judge(file_index, raw)
    if admitted is None:
        return judged
    record = admitted.record
    line = sample_line(work.model, work.build(record, firewall.recorded_at), firewall.export)
    return Judged(line=line, category=str(record.category), unchecked=judged.unchecked)


def provenance_payload(record: ScoredRow, recorded_at: str) -> dict[str, Any]:
    return {**provenance_dict(record.provenance), "recorded_at": recorded_at}


def sample_line(model: type[BaseModel], payload: dict[str, Any], export: str) -> bytes:
    """The firewall's first wall: the sample's type refuses a forbidden category."""
    try:
        return validated_line(model, payload)
    except ValidationError as err:
        record_id, origin = payload.get("id"), row_origin(payload)
        raise ValidationFailed(
            f"export {export}: the {export} record type refused {record_id} ({origin}); "
            "nothing was written",
            [format_validation_error(err)],
            hint="this is a bug in distill's export policy: report it",
        ) from err
