"""Big units never stop a run: every re-read limit follows `[collect] max_line_bytes`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from distill.config import load_config
from distill.errors import ValidationFailed
from distill.home import Home
from distill.jsonio import DEFAULT_MAX_LINE_BYTES
from distill.limits import LineLimits
from distill.runs import RunOptions, run_all
from distill.runs.audit import AuditOptions, run_audit
from distill.schemas import SftSample, SkipReason
from distill.schemas.fast import SftRow
from distill.sources import RowOutcome
from distill.stages import collect, export_rag, score
from distill.stages.export_datasets import reread_check

from .conftest import RECORDED_AT, read_jsonl, run_pipeline, write_stream
from .helpers.samples import sft_sample

collect_module = importlib.import_module("distill.stages.collect")
BIG_LINE = 373  # the real submission's source line
T0 = "2025-02-01T09:00:00Z"


def review(line: int, response: str, verdict: str = "accept") -> dict[str, Any]:
    return {
        "observation_id": f"O-{line}",
        "created_at": T0,
        "task_id": f"T-{line % 7}",
        "prompt": f"Fix issue {line}",
        "response": response,
        "verdict": verdict,
    }


def big_patch() -> str:
    """About 900 KB: a real SWE-bench submission's size."""
    return "".join(
        f"+    line {i} of the fix in django/db/models/query.py\n" for i in range(17_000)
    )


def big_home(home: Home, config: str) -> None:
    if config:
        home.config_path.write_text(config)
    rows = [review(line, f"Answer {line}: verify the tests pass.") for line in range(1, 400)]
    rows[BIG_LINE - 1] = review(BIG_LINE, big_patch())
    write_stream(home, "observer_reviews", rows)


@pytest.mark.parametrize(
    "config", ["", "[collect]\nmax_line_bytes = 4194304\n"], ids=["default", "4MiB"]
)
def test_a_900_kb_unit_goes_through_run_all(home: Home, config: str) -> None:
    """It used to fail export_rag: its RAG row holds the text twice, past a fixed 1 MiB."""
    big_home(home, config)
    result = run_all(
        home,
        load_config(home.config_path),
        RunOptions(recorded_at=RECORDED_AT, embedder="hash-384"),
    )
    assert result.summary.passed, [r.reason for r in result.receipts]
    rag = {row["id"]: row for row in read_jsonl(home.export_path("rag"))}
    big = rag[f"observer_reviews:O-{BIG_LINE}"]
    assert len(orjson.dumps(big)) > DEFAULT_MAX_LINE_BYTES  # more than the old re-read limit
    assert big["provenance"]["line"] == BIG_LINE
    assert len(rag) == 399
    sft = {row["id"] for row in read_jsonl(home.export_path("sft"))}
    assert f"observer_reviews:O-{BIG_LINE}" in sft


@pytest.mark.parametrize("source", [64, 1024, DEFAULT_MAX_LINE_BYTES, 64 << 20])
def test_each_limit_holds_what_the_stage_before_it_writes(source: int) -> None:
    limits = LineLimits(source)
    assert limits.evidence >= 4 * source  # text, file paths, validation steps, metadata
    assert limits.scored >= 2 * limits.evidence  # plus a rule that may quote the verdict
    assert limits.export >= 2 * limits.scored  # RAG's text beside instruction and response


def test_the_limits_follow_distill_toml(home: Home) -> None:
    home.config_path.write_text("[collect]\nmax_line_bytes = 4096\n")
    assert LineLimits.of_home(home) == LineLimits(4096)
    assert "4096 max_line_bytes" in LineLimits(4096).describe("scored")


def test_evidence_over_its_limit_is_a_skip_naming_the_source_line(home: Home) -> None:
    payload = _evidence_payload("x" * 5000)
    skip = collect_module._line_or_skip(payload, 1000)
    assert isinstance(skip, RowOutcome) and skip.skip is SkipReason.line_too_long
    assert "evidence limit 1000" in skip.detail
    assert isinstance(collect_module._line_or_skip(payload, 1 << 20), bytes)


def _evidence_payload(response: str) -> dict[str, Any]:
    return {
        "schema": "evidence.v1",
        "id": "observer_reviews:O-1",
        "stream": "observer_reviews",
        "native_id": "O-1",
        "task_id": None,
        "created_at": T0,
        "instruction": "Fix it",
        "response": response,
        "file_paths": [],
        "validation_steps": [],
        "signals": {},
        "metadata": {},
        "provenance": {
            "stream": "observer_reviews",
            "source_file": "data/_kb/observer_reviews.jsonl",
            "line": 1,
            "sig_hash": "0" * 64,
            "source_run_id": "observer_reviews:O-1",
            "recorded_at": RECORDED_AT,
        },
    }


def test_a_scored_line_over_its_limit_is_one_quarantined_row(home: Home) -> None:
    home.config_path.write_text("[collect]\nmax_line_bytes = 1024\n")
    write_stream(home, "observer_reviews", [review(line, f"Answer {line}") for line in (1, 2)])
    config = load_config(home.config_path)
    collect(home, config, recorded_at=RECORDED_AT)
    score(home, config, recorded_at=RECORDED_AT)
    scored = home.scored_dir / "observer_reviews.jsonl"
    with open(scored, "ab") as handle:  # a hand-made line, longer than any score writes
        handle.write(orjson.dumps({"id": "x", "pad": "y" * LineLimits(1024).scored}) + b"\n")
    report = export_rag(home, recorded_at=RECORDED_AT)
    assert report.passed and report.records_out == 2
    assert report.quarantined == {"schema_violation": 1}
    [entry] = read_jsonl(home.quarantine_path("rag"))
    assert entry["line"] == 3
    assert entry["detail"].startswith("line 3 of data/scored-runs/observer_reviews.jsonl is ")
    assert "the scored line limit" in entry["detail"]


def test_an_evidence_line_over_its_limit_stops_score_by_name_not_silently(home: Home) -> None:
    home.config_path.write_text("[collect]\nmax_line_bytes = 1024\n")
    write_stream(home, "observer_reviews", [review(1, "Answer 1")])
    config = load_config(home.config_path)
    collect(home, config, recorded_at=RECORDED_AT)
    evidence = home.evidence_dir / "observer_reviews.jsonl"
    with open(evidence, "ab") as handle:
        handle.write(b'{"pad":"' + b"y" * LineLimits(1024).evidence + b'"}\n')
    with pytest.raises(ValidationFailed, match=r"observer_reviews\.jsonl:2 is \d+ bytes, over"):
        score(home, config, recorded_at=RECORDED_AT)


def test_reread_errors_name_the_source_line_not_a_line_of_the_unwritten_file(
    tmp_path: Path,
) -> None:
    rows = [sft_sample(line) for line in (12, BIG_LINE)]
    path = tmp_path / "sft.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))

    def refuse_the_big_one(sample: SftRow) -> str | None:
        return "refused" if sample.provenance.line == BIG_LINE else None

    with pytest.raises(ValidationFailed) as caught:
        reread_check(SftSample, refuse_the_big_one, "sft")(path)
    assert caught.value.errors == [f"data/_kb/observer_reviews.jsonl:{BIG_LINE}: refused"]


def test_a_dataset_row_over_the_export_limit_is_named_by_its_output_row(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_bytes(orjson.dumps(sft_sample(1)) + b"\n")
    with pytest.raises(ValidationFailed) as caught:
        reread_check(SftSample, lambda sample: None, "sft", limit=100)(path)
    assert caught.value.errors[0].startswith("row 1: ") and "over the limit 100" in str(
        caught.value.errors
    )


def test_run_pipeline_accounting_holds_with_a_big_unit(home: Home) -> None:
    big_home(home, "")
    for report in run_pipeline(home).values():
        assert report.passed and report.balanced


def test_audit_full_reads_a_big_unit_back(home: Home) -> None:
    """Its export checks used to skip a row over 1 MiB, then find the index one row longer."""
    big_home(home, "")
    config = load_config(home.config_path)
    options = RunOptions(recorded_at=RECORDED_AT, embedder="hash-384")
    assert run_all(home, config, options).summary.passed
    audit = run_audit(
        home, config, AuditOptions(embedder="hash-384", skip=frozenset({"acceptance"}))
    )
    assert [c.name for c in audit.checks if c.level == "required" and not c.passed] == []
