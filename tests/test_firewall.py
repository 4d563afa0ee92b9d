"""The exports' contamination firewall (docs/exports.md), through the real pipeline."""

from __future__ import annotations

import importlib
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.errors import ValidationFailed
from distill.home import Home
from distill.limits import LineLimits
from distill.schemas import (
    Category,
    ExportName,
    PreferenceSample,
    QuarantineReason,
    QuarantineRecord,
    RagSample,
    SftSample,
)
from distill.schemas.fast import SftRow
from distill.stages import (
    StageReport,
    export_datasets,
    export_preference,
    export_rag,
    export_sft,
    prechecks,
)
from distill.stages.export_datasets import reread_check
from distill.stages.prechecks import LINES_AT_ONCE, NO_KEY, id_key, lines_holding, repeated_keys
from distill.stages.reread import AtMost

from .conftest import RECORDED_AT, read_jsonl, run_pipeline, write_stream
from .helpers.samples import sft_sample

# the package exports the function export_preference under the module's name: import by path
export_preference_module = importlib.import_module("distill.stages.export_preference")

SHA256 = re.compile(r"^[0-9a-f]{64}$")
REASONS = {reason.value for reason in QuarantineReason}
T0 = "2025-02-01T09:00:00Z"


def obs(native: str, task: str | None, verdict: str | None, **fields: Any) -> dict[str, Any]:
    """An observer_reviews row: accept → accepted, reject → rejected, else needs review."""
    row: dict[str, Any] = {
        "observation_id": native,
        "created_at": T0,
        "prompt": f"How do we handle {task}?",
        "response": f"Answer {native}: retry the call, then verify the ledger balances.",
    }
    if task is not None:
        row["task_id"] = task
    if verdict is not None:
        row["verdict"] = verdict
    return {**row, **fields}


def audit(native: str, task: str, severity: str, **fields: Any) -> dict[str, Any]:
    """An audits row: low → accepted, medium → partially_accepted, high → rejected."""
    row = {
        "audit_id": native,
        "created_at": T0,
        "task_id": task,
        "topic": f"How do we handle {task}?",
        "finding": f"Finding {native}: the handler swallows errors.",
        "severity": severity,
    }
    return {**row, **fields}


def exports(home: Home, export: str) -> list[dict[str, Any]]:
    return read_jsonl(home.export_path(export))


def quarantine(home: Home, export: str) -> list[QuarantineRecord]:
    return [
        QuarantineRecord.model_validate(row) for row in read_jsonl(home.quarantine_path(export))
    ]


def reasons_by_id(home: Home, export: str) -> dict[str | None, str]:
    return {q.record_id: q.reason.value for q in quarantine(home, export) if q.pair is None}


def assert_invariants(home: Home, reports: dict[str, StageReport]) -> None:
    """What holds for every home: accounting, provenance on every row, closed reasons."""
    for name, report in reports.items():
        assert report.balanced, (name, report.to_dict())
        assert report.passed, (name, report.errors)
    for export in ("rag", "sft"):
        model = RagSample if export == "rag" else SftSample
        for row in exports(home, export):
            model.model_validate(row)
            assert SHA256.match(row["provenance"]["sig_hash"])
            assert row["provenance"]["source_run_id"] == row["id"]
            assert row["provenance"]["recorded_at"] == RECORDED_AT
    for row in exports(home, "preference"):
        PreferenceSample.model_validate(row)
        for side in ("chosen_provenance", "rejected_provenance"):
            assert SHA256.match(row[side]["sig_hash"])
            assert row[side]["source_run_id"]
    for export in ("rag", "sft", "preference"):
        for entry in quarantine(home, export):
            assert entry.reason.value in REASONS
            assert entry.export == export


def category_home(home: Home) -> None:
    """One record of each category, each with content and a task of its own."""
    write_stream(
        home,
        "observer_reviews",
        [obs("O-A", "T-a", "accept"), obs("O-R", "T-r", "reject"), obs("O-H", "T-h", "maybe")],
    )
    write_stream(home, "audits", [audit("AU-P", "T-p", "medium")])


# --- SFT and RAG: which categories get in ---------------------------------------------------


@pytest.mark.parametrize("include_partial", [False, True])
@pytest.mark.parametrize("include_review", [False, True])
def test_sft_and_rag_admit_only_their_categories(
    home: Home, include_partial: bool, include_review: bool
) -> None:
    category_home(home)
    reports = run_pipeline(home, include_partial=include_partial, include_review=include_review)
    assert_invariants(home, reports)

    sft = {row["id"]: row["quality_score"] for row in exports(home, "sft")}
    expected_sft = {"observer_reviews:O-A": "accepted"}
    if include_partial:
        expected_sft["audits:AU-P"] = "partially_accepted"
    assert sft == expected_sft
    assert reasons_by_id(home, "sft") == {
        "observer_reviews:O-R": "unsafe_sft_category",
        "observer_reviews:O-H": "unsafe_sft_category",
        **({} if include_partial else {"audits:AU-P": "category_disallowed"}),
    }

    rag = {row["id"]: row["category"] for row in exports(home, "rag")}
    expected_rag = {"observer_reviews:O-A": "accepted", "audits:AU-P": "partially_accepted"}
    if include_review:
        expected_rag["observer_reviews:O-H"] = "needs_human_review"
    assert rag == expected_rag
    assert reasons_by_id(home, "rag") == {
        "observer_reviews:O-R": "unsafe_rag_category",
        **({} if include_review else {"observer_reviews:O-H": "category_disallowed"}),
    }


def test_sft_is_trl_prompt_completion(home: Home) -> None:
    category_home(home)
    run_pipeline(home)
    [row] = exports(home, "sft")
    assert row["prompt"] == [{"role": "user", "content": "How do we handle T-a?"}]
    assert row["completion"] == [
        {
            "role": "assistant",
            "content": "Answer O-A: retry the call, then verify the ledger balances.",
        }
    ]
    assert row["task_id"] == "T-a"


def test_rag_row_is_a_playbook(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [obs("O-1", "T-1", "accept", file="src/retry.py", notes="fine")],
    )
    run_pipeline(home)
    [row] = exports(home, "rag")
    assert row["title"] == "How do we handle T-1?"
    assert row["text"] == (
        "How do we handle T-1?\n\nAnswer O-1: retry the call, then verify the ledger balances."
    )
    assert (row["source"], row["task_id"], row["file_paths"]) == (
        "observer_reviews",
        "T-1",
        ["src/retry.py"],
    )
    assert row["validation_steps"] == []  # "verify" is mid-line, not a step
    assert row["provenance"]["source_file"] == "data/_kb/observer_reviews.jsonl"
    assert row["provenance"]["line"] == 1


# --- preference pairs ---------------------------------------------------------------------


def pair_kinds(home: Home, task: str) -> list[str]:
    return [
        row["rejected_provenance"]["category"]
        for row in exports(home, "preference")
        if row["task_id"] == task
    ]


def test_preference_prefers_rejected_then_partial_within_five(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [obs(f"O-{n}", "T-1", "accept") for n in (1, 2)]
        + [obs(f"O-r{n}", "T-1", "reject") for n in (1, 2)],
    )
    write_stream(home, "audits", [audit(f"AU-p{n}", "T-1", "medium") for n in (1, 2)])
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    assert pair_kinds(home, "T-1") == ["rejected"] * 4 + ["partially_accepted"]
    assert reports["preference"].extra["pairs"] == 5
    # the partial record not used is quarantined, not lost
    unpaired = [q for q in quarantine(home, "preference") if q.pair is None]
    assert [(q.category, q.reason) for q in unpaired] == [
        (Category.partially_accepted, QuarantineReason.invalid_preference_pairing)
    ]


def test_a_scored_run_behind_a_byte_order_mark_pairs_like_any_other(home: Home) -> None:
    write_stream(
        home, "observer_reviews", [obs("O-1", "T-1", "accept"), obs("O-2", "T-1", "reject")]
    )
    run_pipeline(home)
    scored = home.scored_dir / "observer_reviews.jsonl"
    scored.write_bytes(b"\xef\xbb\xbf" + scored.read_bytes())  # an editor saved it with one
    report = export_preference(home, recorded_at=RECORDED_AT)
    assert report.passed and report.extra["pairs"] == 1
    [pair] = exports(home, "preference")
    assert pair["chosen_provenance"]["line"] == 1
    assert pair["chosen"][0]["content"] == obs("O-1", "T-1", "accept")["response"]


def test_four_accepted_by_four_rejected_gives_exactly_five_pairs(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [obs(f"O-a{n}", "T-big", "accept") for n in range(4)]
        + [obs(f"O-r{n}", "T-big", "reject") for n in range(4)],
    )
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    pairs = exports(home, "preference")
    assert len(pairs) == 5
    assert {
        (p["chosen_provenance"]["category"], p["rejected_provenance"]["category"]) for p in pairs
    } == {("accepted", "rejected")}
    assert (
        len(
            {
                (p["chosen_provenance"]["source_run_id"], p["rejected_provenance"]["source_run_id"])
                for p in pairs
            }
        )
        == 5
    )
    assert Counter(q.reason.value for q in quarantine(home, "preference")) == {
        "invalid_preference_pairing": 2  # two accepted records left over
    }


def test_partial_is_the_fallback_when_nothing_was_rejected(home: Home) -> None:
    write_stream(home, "observer_reviews", [obs("O-1", "T-2", "accept")])
    write_stream(home, "audits", [audit("AU-1", "T-2", "medium"), audit("AU-2", "T-2", "medium")])
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    assert pair_kinds(home, "T-2") == ["partially_accepted", "partially_accepted"]


def test_pairs_never_cross_tasks(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [
            obs("O-1", "T-a", "accept"),
            obs("O-2", "T-b", "reject"),
            obs("O-3", None, "accept"),
            obs("O-4", None, "reject"),
            obs("O-5", "T-c", "maybe"),
            obs("O-6", "T-c", "reject"),
        ],
    )
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    assert exports(home, "preference") == []
    assert reasons_by_id(home, "preference") == {
        "observer_reviews:O-1": "invalid_preference_pairing",
        "observer_reviews:O-2": "invalid_preference_pairing",
        "observer_reviews:O-3": "invalid_preference_pairing",
        "observer_reviews:O-4": "invalid_preference_pairing",
        "observer_reviews:O-5": "category_disallowed",
        "observer_reviews:O-6": "invalid_preference_pairing",
    }


def test_preference_rows_are_trl_explicit_prompt_with_both_provenances(home: Home) -> None:
    write_stream(
        home, "observer_reviews", [obs("O-1", "T-1", "accept"), obs("O-2", "T-1", "reject")]
    )
    run_pipeline(home)
    [row] = exports(home, "preference")
    assert row["prompt"] == [{"role": "user", "content": "How do we handle T-1?"}]
    assert row["chosen"][0]["content"].startswith("Answer O-1")
    assert row["rejected"][0]["content"].startswith("Answer O-2")
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert row["chosen_provenance"]["source_run_id"] == "observer_reviews:O-1"
    assert row["rejected_provenance"]["source_run_id"] == "observer_reviews:O-2"
    assert row["chosen_provenance"]["sig_hash"] != row["rejected_provenance"]["sig_hash"]


def test_identical_chosen_and_rejected_text_is_never_a_pair(home: Home) -> None:
    same = "Retry the webhook three times."
    write_stream(
        home,
        "observer_reviews",
        [
            obs("O-1", "T-1", "accept", response=same),
            obs("O-2", "T-1", "reject", response=f"  {same}\n"),
            obs("O-3", "T-1", "reject", response="Ignore the webhook."),
        ],
    )
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    [row] = exports(home, "preference")
    assert row["rejected_provenance"]["source_run_id"] == "observer_reviews:O-3"
    refused = [
        (q.reason.value, q.pair.chosen_id, q.pair.rejected_id)
        for q in quarantine(home, "preference")
        if q.pair is not None
    ]
    assert refused == [
        ("invalid_preference_pairing", "observer_reviews:O-1", "observer_reviews:O-2")
    ]
    assert reports["preference"].extra["pairs_refused"] == {"invalid_preference_pairing": 1}


def test_a_record_is_never_paired_with_itself(home: Home) -> None:
    """One raw row read by two streams: accepted as an observation, rejected as an audit."""
    shared = {
        "observation_id": "X-1",
        "audit_id": "X-1",
        "created_at": T0,
        "task_id": "T-self",
        "prompt": "Is the parser fixed?",
        "response": "Yes, patched and verified.",
        "verdict": "accept",
        "topic": "Is the parser fixed?",
        "finding": "No, it still drops the last field.",
        "severity": "high",
    }
    write_stream(home, "observer_reviews", [shared])
    write_stream(home, "audits", [shared])
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    scored = {
        row["id"]: (row["category"], row["provenance"]["sig_hash"])
        for name in ("audits", "observer_reviews")
        for row in read_jsonl(home.scored_dir / f"{name}.jsonl")
    }
    assert scored["observer_reviews:X-1"][0] == "accepted"
    assert scored["audits:X-1"][0] == "rejected"
    assert scored["observer_reviews:X-1"][1] == scored["audits:X-1"][1]

    assert exports(home, "preference") == []
    refused = [
        (q.reason.value, q.pair.chosen_id, q.pair.rejected_id)
        for q in quarantine(home, "preference")
        if q.pair is not None
    ]
    assert refused == [("self_pairing", "observer_reviews:X-1", "audits:X-1")]
    assert reasons_by_id(home, "preference") == {
        "observer_reviews:X-1": "invalid_preference_pairing",
        "audits:X-1": "invalid_preference_pairing",
    }


def test_at_most_five_pairs_per_task_across_many_tasks(home: Home) -> None:
    rows = [
        obs(f"O-{task}-{kind}{n}", f"T-{task}", kind, response=f"{task}{kind}{n}")
        for task in range(6)
        for kind in ("accept", "reject")
        for n in range(task + 1)
    ]
    write_stream(home, "observer_reviews", rows)
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    per_task = Counter(row["task_id"] for row in exports(home, "preference"))
    assert per_task == {f"T-{task}": min(5, (task + 1) ** 2) for task in range(6)}


# --- pre-checks: duplicates, empty content, file paths -----------------------------------


def test_the_key_scan_finds_every_repeated_key_across_chunks() -> None:
    # more lines than one chunk of lines_holding, repeats far apart and at chunk edges
    size = 2 * LINES_AT_ONCE + 7
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 1 << 31, size, dtype=np.int64).astype(np.int32)
    keys[rng.integers(0, size, 500)] = NO_KEY
    keys[[0, LINES_AT_ONCE - 1, LINES_AT_ONCE, size - 1]] = 12345  # one key, four chunks' edges
    keys[rng.integers(0, size, 300)] = keys[rng.integers(0, size, 300)]
    counts = Counter(int(key) for key in keys if key != NO_KEY)
    expected = [line for line, key in enumerate(keys.tolist(), 1) if counts.get(key, 0) > 1]
    assert sorted(repeated_keys(keys).tolist()) == sorted(k for k, n in counts.items() if n > 1)
    assert lines_holding(keys, repeated_keys(keys)) == expected
    assert len(expected) > 300


def test_exports_after_score_in_one_process_use_the_keys_score_remembered(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        obs("O-1", "T-1", "accept", created_at="2025-02-03T00:00:00Z", response="later"),
        obs("O-1", "T-1", "accept", created_at="2025-02-02T00:00:00Z", response="earlier"),
        obs("O-2", "T-1", "reject", response="other"),
    ]
    write_stream(home, "observer_reviews", rows)
    run_pipeline(home)
    scanned = _snapshot(home)
    limit = LineLimits().scored
    for path in sorted(home.scored_dir.glob("*.jsonl")):  # what score remembered is the scan's
        assert (
            prechecks._known_id_keys(path, limit).tolist()
            == prechecks._id_keys(path, limit).tolist()
        )
    # score wrote the scored runs in this process: the exports' duplicate scan reads none of them
    monkeypatch.setattr(prechecks, "_LOSERS_CACHE", {})
    monkeypatch.setattr(prechecks, "_id_keys", _no_scan)
    run_pipeline(home)
    assert _snapshot(home) == scanned
    assert [row["response"] for row in exports(home, "rag")] == ["earlier"]
    # a scored file changed after score wrote it is read again: an appended copy of O-2, earlier
    scored = home.scored_dir / "observer_reviews.jsonl"
    copy = orjson.loads(scored.read_bytes().splitlines()[-1])
    copy["created_at"], copy["response"] = "2024-01-01T00:00:00Z", "appended"
    with open(scored, "ab") as handle:
        handle.write(orjson.dumps(copy) + b"\n")
    with pytest.raises(AssertionError, match="the scan ran"):
        export_rag(home, recorded_at=RECORDED_AT)


def test_a_new_score_forgets_the_keys_of_the_last(tmp_path: Path) -> None:
    homes = []
    for name in ("one", "two"):
        (tmp_path / name / "data" / "_kb").mkdir(parents=True)
        homes.append(Home((tmp_path / name).resolve()))
        write_stream(homes[-1], "observer_reviews", [obs("O-1", "T-1", "accept")])
        run_pipeline(homes[-1])
    remembered = {Path(path).parent for path in prechecks._KEYS_CACHE}
    assert remembered == {homes[1].scored_dir}  # one set of scored runs at most


def _no_scan(path: Path, limit: int) -> Any:
    raise AssertionError(f"the scan ran on {path}")


def test_duplicate_ids_keep_the_earliest_by_time_then_line(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [
            obs("O-1", "T-1", "accept", created_at="2025-02-03T00:00:00Z", response="third"),
            obs("O-1", "T-1", "accept", created_at="2025-02-02T01:00:00+01:00", response="first"),
            obs("O-1", "T-1", "accept", created_at="2025-02-02T00:00:00Z", response="second"),
            obs("O-2", "T-1", "accept", response="other"),
        ],
    )
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    for export in ("rag", "sft"):
        kept = {row["id"]: row for row in exports(home, export)}
        assert set(kept) == {"observer_reviews:O-1", "observer_reviews:O-2"}
        assert kept["observer_reviews:O-1"]["provenance"]["line"] == 2
        dupes = [(q.line, q.reason.value) for q in quarantine(home, export)]
        assert sorted(dupes) == [(1, "duplicate_id"), (3, "duplicate_id")]
        assert reports[export].quarantined == {"duplicate_id": 2}
    assert Counter(q.reason.value for q in quarantine(home, "preference"))["duplicate_id"] == 2


def test_the_exports_rescan_scored_runs_that_changed_since_the_last_export(home: Home) -> None:
    # export_rag's duplicate scan is reused by the next export only for unchanged files
    write_stream(home, "observer_reviews", [obs("O-1", "T-1", "accept", response="first")])
    run_pipeline(home)
    scored = home.scored_dir / "observer_reviews.jsonl"
    copy = orjson.loads(scored.read_bytes().splitlines()[0])
    copy["provenance"]["line"] = 2  # the same id again, later in the file
    with open(scored, "ab") as handle:
        handle.write(orjson.dumps(copy, option=orjson.OPT_SORT_KEYS) + b"\n")
    report = export_sft(home, recorded_at=RECORDED_AT)
    assert report.quarantined == {"duplicate_id": 1}
    assert [row["id"] for row in exports(home, "sft")] == ["observer_reviews:O-1"]


def test_ids_whose_keys_collide_are_no_duplicates(home: Home) -> None:
    # the scans find repeated ids by a 31-bit key, then compare the ids themselves: these two
    # ids share a key (their CRC-32s differ only in the low bit), and both rows are exported
    first, second = "4RD47GADFRGQ", "AQSCGWY67TFA"
    assert id_key(f"observer_reviews:{first}") == id_key(f"observer_reviews:{second}")
    rows = [obs(first, "T-1", "accept", response="a"), obs(second, "T-2", "accept", response="b")]
    write_stream(home, "observer_reviews", rows)
    run_pipeline(home)
    report = export_sft(home, recorded_at=RECORDED_AT)
    assert report.passed and "duplicate_id" not in report.quarantined
    exported = sorted(row["id"] for row in exports(home, "sft"))
    assert exported == [f"observer_reviews:{first}", f"observer_reviews:{second}"]


def test_duplicates_are_found_in_hand_edited_scored_runs(home: Home) -> None:
    # a byte order mark, CRLF endings, blank lines, garbage and an invalid copy: the valid copy
    # with the earliest time is kept wherever it sits, and the scan numbers lines as the export
    write_stream(home, "observer_reviews", [obs("O-1", "T-1", "accept", response="first")])
    run_pipeline(home)
    scored = home.scored_dir / "observer_reviews.jsonl"
    row = orjson.loads(scored.read_bytes().splitlines()[0])

    def copy(line: int, created_at: str, **fields: Any) -> bytes:
        changed = {**row, "created_at": created_at, **fields}
        changed["provenance"] = {**row["provenance"], "line": line}
        return orjson.dumps(changed, option=orjson.OPT_SORT_KEYS)

    lines = [
        copy(1, "2025-02-03T00:00:00Z"),
        b"",
        b"{not json",
        copy(4, "2025-01-01T00:00:00Z", category="bogus"),  # invalid: never evicts a valid copy
        b"   ",
        copy(6, "2025-02-02T00:00:00Z"),  # the earliest valid copy
        copy(7, "2025-02-04T00:00:00Z"),
    ]
    scored.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines))  # no final line ending
    report = export_sft(home, recorded_at=RECORDED_AT)
    assert [row["provenance"]["line"] for row in exports(home, "sft")] == [6]
    dupes = sorted(q.line or 0 for q in quarantine(home, "sft") if q.reason.value == "duplicate_id")
    assert dupes == [1, 7]
    assert report.quarantined == {"duplicate_id": 2, "schema_violation": 2}


@pytest.mark.parametrize("response", [None, "", "   \n\t"])
def test_empty_response_is_quarantined_not_skipped(home: Home, response: str | None) -> None:
    empty = obs("O-empty", "T-1", "accept")
    if response is None:
        del empty["response"]
    else:
        empty["response"] = response
    write_stream(home, "observer_reviews", [empty, obs("O-2", "T-1", "reject")])
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    assert reports["collect"].records_out == 2  # an empty response is evidence, not a skip
    for export in ("rag", "sft", "preference"):
        assert reasons_by_id(home, export)["observer_reviews:O-empty"] == "empty_content"
        assert reports[export].quarantined["empty_content"] == 1
    assert exports(home, "preference") == []


def path_home(home: Home) -> None:
    write_stream(
        home,
        "observer_reviews",
        [
            obs("O-real", "T-1", "accept", file="src/real.py"),
            obs("O-ghost", "T-2", "accept", file="src/ghost.py"),
            obs("O-text", "T-3", "accept", response="See docs/missing.md for the steps."),
            obs("O-escape", "T-4", "accept", file="../outside.py"),
            obs("O-r2", "T-2", "reject"),
        ],
    )


def test_repo_root_quarantines_hallucinated_file_paths(home: Home, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "real.py").write_text("print('hi')\n")
    (tmp_path / "outside.py").write_text("")
    path_home(home)
    reports = run_pipeline(home, repo_root=repo)
    assert_invariants(home, reports)
    ghosts = {"observer_reviews:O-ghost", "observer_reviews:O-text", "observer_reviews:O-escape"}
    for export in ("rag", "sft", "preference"):
        assert reports[export].checks["hallucinated_file_path"] == "enabled"
        reasons = reasons_by_id(home, export)
        assert {
            key for key, value in reasons.items() if value == "hallucinated_file_path"
        } == ghosts
    assert {row["id"] for row in exports(home, "sft")} == {"observer_reviews:O-real"}
    assert {row["id"] for row in exports(home, "rag")} == {"observer_reviews:O-real"}
    assert exports(home, "preference") == []  # T-2's only accepted record cites a ghost


def test_without_repo_root_the_path_check_is_skipped(home: Home) -> None:
    path_home(home)
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    for export in ("rag", "sft", "preference"):
        assert reports[export].checks["hallucinated_file_path"].startswith("skipped")
        assert "hallucinated_file_path" not in reports[export].quarantined
    assert len(exports(home, "sft")) == 4
    assert len(exports(home, "preference")) == 1


# --- hand-corrupted scored runs ------------------------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], bytes]:
    return lambda row: orjson.dumps({k: v for k, v in row.items() if k != key})


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], bytes]:
    return lambda row: orjson.dumps({**row, key: value})


def _set_provenance(key: str, value: Any) -> Callable[[dict[str, Any]], bytes]:
    return lambda row: orjson.dumps({**row, "provenance": {**row["provenance"], key: value}})


def _drop_provenance(key: str) -> Callable[[dict[str, Any]], bytes]:
    return lambda row: orjson.dumps(
        {**row, "provenance": {k: v for k, v in row["provenance"].items() if k != key}}
    )


CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], bytes], str]] = [
    ("truncated", lambda row: orjson.dumps(row)[:40], "schema_violation"),
    ("not-an-object", lambda row: b"[1, 2]", "schema_violation"),
    ("bad-category", _set("category", "great"), "schema_violation"),
    ("unknown-field", _set("surprise", 1), "schema_violation"),
    ("wrong-schema-tag", _set("schema", "evidence.v1"), "schema_violation"),
    ("response-not-text", _set("response", ["a"]), "schema_violation"),
    ("no-provenance", _drop("provenance"), "missing_provenance"),
    ("null-provenance", _set("provenance", None), "missing_provenance"),
    ("no-sig-hash", _drop_provenance("sig_hash"), "missing_provenance"),
    ("short-sig-hash", _set_provenance("sig_hash", "abc123"), "missing_provenance"),
    ("no-source-file", _drop_provenance("source_file"), "missing_provenance"),
    ("no-source-run-id", _drop_provenance("source_run_id"), "missing_provenance"),
    ("no-id", _drop("id"), "missing_source_run_id"),
    ("empty-id", _set("id", ""), "missing_source_run_id"),
    ("numeric-id", _set("id", 7), "missing_source_run_id"),
]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [(mutate, reason) for _, mutate, reason in CORRUPTIONS],
    ids=[name for name, _, _ in CORRUPTIONS],
)
def test_corrupted_scored_run_is_quarantined(
    home: Home, mutate: Callable[[dict[str, Any]], bytes], reason: str
) -> None:
    write_stream(
        home,
        "observer_reviews",
        [obs("O-1", "T-1", "accept"), obs("O-2", "T-1", "accept"), obs("O-3", "T-1", "reject")],
    )
    run_pipeline(home)
    scored_path = home.scored_dir / "observer_reviews.jsonl"
    lines = scored_path.read_bytes().splitlines()
    lines[1] = mutate(orjson.loads(lines[1]))
    scored_path.write_bytes(b"\n".join(lines) + b"\n")

    reports = {
        "rag": export_rag(home, recorded_at=RECORDED_AT),
        "sft": export_sft(home, recorded_at=RECORDED_AT),
        "preference": export_preference(home, recorded_at=RECORDED_AT),
    }
    assert_invariants(home, reports)
    for export, report in reports.items():
        entries = [q for q in quarantine(home, export) if q.line == 2]
        assert [q.reason.value for q in entries] == [reason], export
        assert report.quarantined[reason] == 1
    assert {row["id"] for row in exports(home, "sft")} == {"observer_reviews:O-1"}
    [pair] = exports(home, "preference")
    assert pair["chosen_provenance"]["source_run_id"] == "observer_reviews:O-1"


# --- the second wall: each exporter re-reads its own output --------------------------------


def test_reread_check_refuses_a_forbidden_sft_row(tmp_path: Path) -> None:
    good = sft_sample(1, "T-1")
    path = tmp_path / "sft.jsonl"

    def check(sample: SftRow) -> str | None:
        return None if sample.quality_score == Category.accepted else "not accepted"

    verify = reread_check(SftSample, check, "sft")
    path.write_bytes(orjson.dumps(good) + b"\n")
    verify(path)  # a clean file passes

    for bad in (
        {**good, "quality_score": "rejected"},  # the type refuses it
        {**good, "quality_score": "needs_human_review"},
        {**good, "id": "observer_reviews:O-2", "quality_score": "partially_accepted"},  # check
        good,  # a duplicate id
    ):
        path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(bad) + b"\n")
        with pytest.raises(ValidationFailed) as info:
            verify(path)
        assert info.value.errors

    # ids are compared as ids: two whose CRC-32 collide are no duplicates, three copies are two
    twins = [{**good, "id": f"observer_reviews:O-{n}"} for n in (29685295, 32060020)]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in twins))
    verify(path)
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in [good, *twins, good, good]))
    with pytest.raises(ValidationFailed) as info:
        verify(path)
    assert info.value.errors == ["2 duplicate id(s) in the output"]


def test_reread_holds_at_most_n_rows_per_value_and_tells_colliding_values_apart(
    tmp_path: Path,
) -> None:
    def row(number: int, task_id: str) -> bytes:
        return orjson.dumps(sft_sample(number, task_id)) + b"\n"

    path = tmp_path / "sft.jsonl"
    verify = reread_check(
        SftSample, lambda sample: None, "sft", at_most=AtMost("task_id", 2, "task", "rows")
    )
    twins = ("T-2289854", "T-8022000")  # two task ids with one key
    assert id_key(twins[0]) == id_key(twins[1])
    path.write_bytes(b"".join(row(n, twins[n % 2]) for n in range(1, 5)))
    verify(path)  # two rows each: within the limit, however their keys collide

    path.write_bytes(b"".join(row(n, "T-1") for n in range(1, 5)) + row(5, twins[0]))
    with pytest.raises(ValidationFailed) as info:
        verify(path)
    assert info.value.errors == ["data/_kb/observer_reviews.jsonl:3: task T-1 has more than 2 rows"]


def test_a_sixth_pair_of_a_task_that_slips_through_is_caught(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        obs(f"O-{kind}{n}", "T-1", kind, response=f"{kind}{n}")
        for kind in ("accept", "reject")
        for n in range(3)
    ]
    write_stream(home, "observer_reviews", rows)
    run_pipeline(home)
    assert len(exports(home, "preference")) == 5
    before = _snapshot(home)
    monkeypatch.setattr(export_preference_module, "MAX_PAIRS_PER_TASK", 9)  # pairing only
    with pytest.raises(ValidationFailed) as info:
        export_preference(home, recorded_at=RECORDED_AT)
    assert [error.split(": ", 1)[1] for error in info.value.errors] == [
        "task T-1 has more than 5 pairs"
    ]
    assert _snapshot(home) == before


def _snapshot(home: Home) -> dict[str, bytes]:
    """The export files (not the quarantine files) and nothing else: no temp file left over."""
    files = {
        path.relative_to(home.exports_dir).as_posix(): path.read_bytes()
        for path in sorted(home.exports_dir.rglob("*"))
        if path.is_file()
    }
    assert not [name for name in files if name.endswith(".tmp")]
    return {name: data for name, data in files.items() if not name.startswith("quarantine/")}


def _leak_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let every record past the exporters' category policy, as a buggy policy would."""
    original = export_datasets._export

    def leaky(
        home: Home, export: ExportName, policy: Any, *args: Any, **kwargs: Any
    ) -> StageReport:
        return original(home, export, lambda record: None, *args, **kwargs)

    monkeypatch.setattr(export_datasets, "_export", leaky)


@pytest.mark.parametrize("export", ["sft", "rag"])
def test_a_leaking_policy_is_caught_and_the_old_export_stays(
    home: Home, monkeypatch: pytest.MonkeyPatch, export: str
) -> None:
    # Without its flag, the partial record (SFT) or the needs-review record (RAG) is forbidden;
    # both fit their sample's type, so only the re-read check can stop them.
    forbidden = audit("AU-P", "T-p", "medium") if export == "sft" else None
    write_stream(home, "observer_reviews", [obs("O-A", "T-a", "accept")])
    if forbidden is None:
        write_stream(
            home, "observer_reviews", [obs("O-A", "T-a", "accept"), obs("O-H", "T-h", "x")]
        )
    else:
        write_stream(home, "audits", [forbidden])
    reports = run_pipeline(home)
    assert_invariants(home, reports)
    assert len(exports(home, export)) == 1
    before = _snapshot(home)
    _leak_policy(monkeypatch)
    exporter = export_sft if export == "sft" else export_rag
    with pytest.raises(ValidationFailed, match="re-read") as info:
        exporter(home, recorded_at=RECORDED_AT)
    assert len(info.value.errors) == 1
    assert _snapshot(home) == before


def test_a_rejected_row_written_to_sft_is_caught(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    category_home(home)
    run_pipeline(home)
    before = _snapshot(home)
    original_line = export_datasets.sample_line

    def tampered(model: Any, payload: dict[str, Any], export: str) -> bytes:
        row = orjson.loads(original_line(model, payload, export))
        if row.get("schema") == "sft_sample.v1":
            row["quality_score"] = "rejected"
        return orjson.dumps(row) + b"\n"

    monkeypatch.setattr(export_datasets, "sample_line", tampered)
    with pytest.raises(ValidationFailed) as info:
        export_sft(home, recorded_at=RECORDED_AT)
    assert any("quality_score" in error for error in info.value.errors)
    assert _snapshot(home) == before


def test_a_self_pair_that_slips_through_is_caught(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stream(
        home,
        "observer_reviews",
        [
            obs("O-1", "T-1", "accept", response="same"),
            obs("O-2", "T-1", "reject", response="same"),
        ],
    )
    run_pipeline(home)
    before = _snapshot(home)
    monkeypatch.setattr(export_preference_module, "_pairing_problem", lambda c, r: None)
    with pytest.raises(ValidationFailed) as info:
        export_preference(home, recorded_at=RECORDED_AT)
    assert any("identical" in error for error in info.value.errors)
    assert _snapshot(home) == before


# --- the firewall as an invariant over random homes ----------------------------------------

VERDICTS = st.sampled_from(["accept", "reject", "maybe", None])
SEVERITIES = st.sampled_from(["low", "medium", "high", "bogus"])
TASKS = st.sampled_from(["T-1", "T-2", "T-3", None])
TEXTS = st.sampled_from(["alpha", "beta", "gamma", "", "alpha "])


@st.composite
def random_streams(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    observations = [
        obs(
            f"O-{n}",
            draw(TASKS),
            draw(VERDICTS),
            response=draw(TEXTS),
            created_at=f"2025-02-0{draw(st.integers(1, 3))}T00:00:00Z",
        )
        for n in range(draw(st.integers(0, 9)))
    ]
    # sometimes a duplicate id
    if len(observations) > 0 and draw(st.booleans()):  # a list left of `and` misleads mypy
        observations.append({**observations[0], "response": draw(TEXTS)})
    audits = [
        audit(f"AU-{n}", draw(TASKS) or "T-1", draw(SEVERITIES), finding=draw(TEXTS))
        for n in range(draw(st.integers(0, 6)))
    ]
    return {"observer_reviews": observations, "audits": audits}


@given(random_streams(), st.booleans(), st.booleans())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_firewall_holds_on_random_homes(
    streams: dict[str, list[dict[str, Any]]], include_partial: bool, include_review: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Home(Path(folder))
        for name, rows in streams.items():
            write_stream(home, name, rows)
        reports = run_pipeline(home, include_partial=include_partial, include_review=include_review)
        assert_invariants(home, reports)
        sft_allowed = {"accepted", "partially_accepted"} if include_partial else {"accepted"}
        assert {row["quality_score"] for row in exports(home, "sft")} <= sft_allowed
        rag_allowed = {"accepted", "partially_accepted"}
        if include_review:
            rag_allowed.add("needs_human_review")
        assert {row["category"] for row in exports(home, "rag")} <= rag_allowed
        for export in ("rag", "sft"):
            ids = [row["id"] for row in exports(home, export)]
            assert len(ids) == len(set(ids))
        assert all(row["response"].strip() for row in exports(home, "rag"))
        assert all(row["completion"][0]["content"].strip() for row in exports(home, "sft"))

        scored = {
            row["id"]: row for path in home.scored_dir.glob("*.jsonl") for row in read_jsonl(path)
        }
        pairs = exports(home, "preference")
        per_task = Counter(row["task_id"] for row in pairs)
        assert all(count <= 5 for count in per_task.values())
        seen_partial: set[str] = set()
        for row in pairs:
            chosen, rejected = row["chosen_provenance"], row["rejected_provenance"]
            assert chosen["task_id"] == rejected["task_id"] == row["task_id"]
            assert chosen["category"] == "accepted"
            assert rejected["category"] in ("rejected", "partially_accepted")
            assert chosen["source_run_id"] != rejected["source_run_id"]
            assert chosen["sig_hash"] != rejected["sig_hash"]
            assert row["chosen"][0]["content"].strip() != row["rejected"][0]["content"].strip()
            assert scored[chosen["source_run_id"]]["task_id"] == row["task_id"]
            if rejected["category"] == "partially_accepted":
                seen_partial.add(row["task_id"])
            else:  # accepted × rejected pairs all come before the partial fallback
                assert row["task_id"] not in seen_partial


@pytest.mark.parametrize("export", ["sft", "preference"])
def test_a_refused_export_leaves_its_quarantine_file_untouched(
    home: Home, monkeypatch: pytest.MonkeyPatch, export: str
) -> None:
    write_stream(
        home,
        "observer_reviews",
        [obs("O-1", "T-1", "accept", response="same")]
        + ([obs("O-2", "T-1", "reject", response="same")] if export == "preference" else []),
    )
    write_stream(home, "audits", [audit("AU-P", "T-p", "medium")])
    run_pipeline(home)
    quarantine_before = home.quarantine_path(export).read_bytes()
    assert quarantine_before  # the partial record (SFT), the identical-text pair (preference)
    if export == "sft":
        _leak_policy(monkeypatch)
    else:
        monkeypatch.setattr(export_preference_module, "_pairing_problem", lambda c, r: None)
    exporter = export_sft if export == "sft" else export_preference
    with pytest.raises(ValidationFailed, match="nothing was written"):
        exporter(home, recorded_at=RECORDED_AT)
    assert home.quarantine_path(export).read_bytes() == quarantine_before


@pytest.mark.parametrize(
    "corrupt",
    [_set("category", "great"), _drop("provenance")],
    ids=["schema_violation", "missing_provenance"],
)
def test_an_invalid_copy_does_not_evict_the_valid_record(
    home: Home, corrupt: Callable[[dict[str, Any]], bytes]
) -> None:
    write_stream(home, "observer_reviews", [obs("O-1", "T-1", "accept")])
    run_pipeline(home)
    scored_path = home.scored_dir / "observer_reviews.jsonl"
    valid = orjson.loads(scored_path.read_bytes())
    invalid = corrupt({**valid, "created_at": "2025-01-01T00:00:00Z"})  # earlier than the valid
    scored_path.write_bytes(orjson.dumps(valid) + b"\n" + invalid + b"\n")
    report = export_sft(home, recorded_at=RECORDED_AT)
    assert report.balanced
    assert [row["id"] for row in exports(home, "sft")] == ["observer_reviews:O-1"]
