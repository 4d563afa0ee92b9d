"""export rag / export sft: the two record-per-row datasets behind the firewall."""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from distill.config import Config, load_config
from distill.engine import LOCAL, Engine
from distill.errors import ValidationFailed, format_validation_error
from distill.home import Home
from distill.jsonio import RawLine, atomic_writer, iter_raw_lines, validated_line
from distill.limits import LineLimits
from distill.schemas import Category, ExportName, QuarantineReason, RagSample, SftSample
from distill.schemas.fast import FAST_TYPES, RagRow, ScoredRow, SftRow, provenance_dict
from distill.stage_report import StageReport
from distill.stages.firewall import (
    Firewall,
    Judged,
    QuarantineSink,
    Refusal,
    candidate_lines,
    firewall_for,
    id_hash,
    path_check_notes,
    repo_roots,
    scored_files,
)
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

    def check(sample: RagRow) -> str | None:
        return None if sample.category in allowed else f"{sample.id} is {sample.category}"

    params = {"include_review": include_review}
    return _export(
        home,
        "rag",
        policy,
        rag_payload,
        RagSample,
        check,
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

    def check(sample: SftRow) -> str | None:
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
        "category": record.category.value,
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
        "quality_score": record.category.value,  # the type refuses the rest
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
            verify = reread_check(model, check, export, limits.export)
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
    return Judged(line=line, category=record.category.value, unchecked=judged.unchecked)


def provenance_payload(record: ScoredRow, recorded_at: str) -> dict[str, Any]:
    return {**provenance_dict(record.provenance), "recorded_at": recorded_at}


def sample_line(model: type[BaseModel], payload: dict[str, Any], export: str) -> bytes:
    """The firewall's first wall: the sample's type refuses a forbidden category."""
    try:
        return validated_line(model, payload)
    except ValidationError as err:
        record_id, origin = payload.get("id"), _origin(payload)
        raise ValidationFailed(
            f"export {export}: the {export} record type refused {record_id} ({origin}); "
            "nothing was written",
            [format_validation_error(err)],
            hint="this is a bug in distill's export policy: report it",
        ) from err


def reread_check(
    model: type[BaseModel],
    check: Callable[[S], str | None],
    export: str,
    limit: int = LineLimits().export,
) -> Callable[[Path], None]:
    """The firewall's second wall: re-read the written file and refuse it if anything slipped by.

    Each row is read as ``model``'s msgspec mirror (:mod:`distill.schemas.fast`; what it
    refuses, pydantic decides) and handed to ``check``, which refuses what the export forbids;
    ids must be unique. ``limit`` is the export line limit (:class:`LineLimits`); each error
    names the row's source file and line, never a line of the file that is not published.
    """
    read = _sample_reader(model, cast(type[S], FAST_TYPES[model]))

    def verify(path: Path) -> None:
        errors: list[str] = []
        ids = array("q")
        for raw in iter_raw_lines(path, limit, digest=False):
            if raw.data is None:
                errors.append(f"row {raw.line_no}: {raw.size} bytes, over the limit {limit}")
                continue
            if not raw.data.strip():
                errors.append(f"row {raw.line_no}: blank line")
                continue
            sample = read(raw.data)
            if isinstance(sample, str):
                errors.append(f"{_origin(raw.data, raw.line_no)}: {sample}")
                continue
            problem = check(sample)
            if problem:
                errors.append(f"{_origin(raw.data, raw.line_no)}: {problem}")
            ids.append(id_hash(str(getattr(sample, "id", ""))))
        keys = np.array(ids, dtype=np.int64)  # 8 bytes a row, sorted in place
        keys.sort()
        repeats = int(np.count_nonzero(keys[1:] == keys[:-1])) if len(keys) > 1 else 0
        if repeats:
            errors.append(f"{repeats} duplicate id(s) in the output")
        if errors:
            raise ValidationFailed(
                f"export {export}: re-read found {len(errors)} bad row(s); nothing was written",
                errors,
                hint="this is a bug in distill: report it with the scored-runs that trigger it",
            )

    return verify


def _sample_reader(model: type[BaseModel], struct: type[S]) -> Callable[[bytes], S | str]:
    """bytes → the sample as ``struct``, or why ``model`` refuses them."""
    decode = msgspec.json.Decoder(struct).decode

    def read(data: bytes) -> S | str:
        try:
            return decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        try:  # msgspec is strict: pydantic decides what it refused
            valid = model.model_validate_json(data)
        except ValidationError as err:
            return format_validation_error(err)
        try:
            return msgspec.convert(valid.model_dump(mode="json", by_alias=True), struct)
        except msgspec.ValidationError as err:
            return f"not readable as {struct.__name__}: {err}"

    return read


def _origin(row: bytes | dict[str, Any], output_line: int | None = None) -> str:
    """Where a dataset row came from, for messages: its source file and line."""
    if isinstance(row, bytes):
        try:
            row = orjson.loads(row)
        except orjson.JSONDecodeError:
            row = {}
    for key in ("provenance", "chosen_provenance"):
        origin = row.get(key) if isinstance(row, dict) else None
        if isinstance(origin, dict) and origin.get("source_file") and origin.get("line"):
            return f"{origin['source_file']}:{origin['line']}"
    return f"row {output_line} of the output" if output_line else "no provenance"
