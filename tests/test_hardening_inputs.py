"""Hostile input lines (issue 11): nesting, big integers, BOMs, lower-case times, loose rule inputs.

Each line of a stream ends as evidence or as a skip with a reason; nothing one line holds may
stop a run, and a rule input of the wrong type or range is needs_human_review, never a guess.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill.config import Config, load_config
from distill.home import Home
from distill.jsonio import canonical_hash, iter_raw_lines
from distill.runs import RunOptions, run_all
from distill.schemas import Category, SkipReason, SkipRecord
from distill.sources import BUILTIN_SOURCES, MAX_ROW_DEPTH, Source, parse_row
from distill.sources.parse import RowSkip, nesting_depth
from distill.sources.rows import evidence_from_row, normalise_time
from distill.stages import collect

from .conftest import RECORDED_AT, read_jsonl, run_pipeline, write_stream
from .helpers.rows import DROP, make_row, score_row

BOM = b"\xef\xbb\xbf"
H = Category.needs_human_review


def nested(levels: int) -> Any:
    """A value ``levels`` deep: 1 is ``[]``, 2 is ``[[]]``."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep_line(depth: int) -> bytes:
    """An audits row ``depth`` levels deep (written by hand: orjson cannot write it)."""
    levels = depth - 1
    return orjson.dumps(audit_row(meta=0)).replace(
        b'"meta":0', b'"meta":' + b"[" * levels + b"]" * levels
    )


def audit_row(**fields: Any) -> dict[str, Any]:
    return {"audit_id": "N1", "created_at": RECORDED_AT, "task_id": "T-1", **fields}


def collected(home: Home, stream: str, lines: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Collect one stream; return (evidence rows, skip records)."""
    write_stream(home, stream, lines)
    report = collect(home, load_config(home.config_path), recorded_at=RECORDED_AT)
    assert report.passed
    skips = [SkipRecord.model_validate(row) for row in read_jsonl(home.skips_path)]
    return read_jsonl(home.evidence_dir / f"{stream}.jsonl"), skips


# --- 3. nesting: a limit, and a last resort for anything else ------------------------------


@pytest.mark.parametrize("depth", [MAX_ROW_DEPTH + 1, 253, 254, 300, 5000])
def test_a_deeply_nested_line_is_a_skip_not_a_crash(home: Home, depth: int) -> None:
    deep = deep_line(depth)
    evidence, skips = collected(home, "audits", [deep, audit_row(audit_id="N2")])
    assert [row["native_id"] for row in evidence] == ["N2"]
    [skip] = skips
    assert (skip.line, skip.reason) == (1, SkipReason.too_deeply_nested)
    assert f"the limit is {MAX_ROW_DEPTH}" in skip.detail
    if depth <= 1024:  # deeper than that, orjson stops reading and says so
        assert f"nested {depth} levels deep" in skip.detail


def test_nesting_depth_counts_the_row_itself() -> None:
    values: list[object] = [1, [], {"a": [1]}, {"a": {"b": []}}]
    assert [nesting_depth(v) for v in values] == [0, 1, 2, 3]
    assert nesting_depth(audit_row(meta=nested(MAX_ROW_DEPTH - 1))) == MAX_ROW_DEPTH


@pytest.mark.parametrize("where", ["meta", "severity", "finding"])
def test_a_row_at_the_nesting_limit_goes_through_every_stage(home: Home, where: str) -> None:
    """The limit is only sound while every later stage can still write and reread such a row."""
    fields = {"topic": "t", "finding": "f", "severity": "low", where: nested(MAX_ROW_DEPTH - 1)}
    row = audit_row(**fields)
    assert nesting_depth(row) == MAX_ROW_DEPTH
    write_stream(home, "audits", [row])
    reports = run_pipeline(home)
    assert all(report.passed for report in reports.values())
    assert reports["collect"].records_out == 1
    assert reports["score"].records_out == 1
    assert not any(reports[name].quarantined.get("schema_violation") for name in reports)


def test_evidence_from_row_applies_the_same_limit() -> None:
    outcome = evidence_from_row(
        BUILTIN_SOURCES["audits"],
        audit_row(meta=nested(MAX_ROW_DEPTH)),
        source_file="data/_kb/audits.jsonl",
        line=1,
        recorded_at=RECORDED_AT,
    )
    assert outcome.skip is SkipReason.too_deeply_nested


class _ExplodingSource(Source):
    def instruction(self, row: Any) -> str:
        raise KeyError("boom")


class _BadSignalsSource(Source):
    def signals(self, row: Any) -> Any:
        return ["not", "a", "dict"]  # evidence.v1 refuses it when collect validates the line


@pytest.mark.parametrize(
    ("adapter", "detail"),
    [(_ExplodingSource, "KeyError: 'boom'"), (_BadSignalsSource, "ValidationError")],
)
def test_an_unexpected_error_on_one_row_is_a_skip(
    home: Home, adapter: type[Source], detail: str
) -> None:
    config = load_config(home.config_path)
    sources = {**config.sources, "audits": adapter(config.sources["audits"].spec)}
    write_stream(home, "audits", [audit_row(), audit_row(audit_id="N2")])
    report = collect(home, Config(sources=sources), recorded_at=RECORDED_AT)
    assert report.passed
    assert (report.records_in, report.records_out) == (2, 0)
    skips = [SkipRecord.model_validate(row) for row in read_jsonl(home.skips_path)]
    assert [s.reason for s in skips] == [SkipReason.unprocessable_row] * 2
    assert all(s.detail.startswith(detail) for s in skips)


def test_run_all_passes_with_a_deep_line_and_keeps_it_in_the_skips(home: Home) -> None:
    deep = b'{"audit_id":"N1","created_at":"2026-01-01T00:00:00Z","meta":[[[' + b"[" * 300
    deep += b"]" * 303 + b"}"  # the line
    write_stream(home, "audits", [deep, audit_row(audit_id="N2", severity="low", finding="ok")])
    options = RunOptions(recorded_at=RECORDED_AT, index=False, embedder="hash-384")
    assert run_all(home, load_config(home.config_path), options).summary.passed
    [skip] = read_jsonl(home.skips_path)
    assert (skip["stream"], skip["line"], skip["reason"]) == ("audits", 1, "too_deeply_nested")


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)


@given(
    st.recursive(
        JSON_LEAVES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=20,
    ),
    st.integers(min_value=0, max_value=400),
)
@settings(max_examples=150, deadline=None)
def test_parse_row_never_raises(value: Any, wrap: int) -> None:
    line = json.dumps({"meta": value, "deep": nested(wrap) if wrap else 0}, allow_nan=False)
    result = parse_row(line.encode())
    if isinstance(result, RowSkip):
        assert result.reason is SkipReason.too_deeply_nested
        assert nesting_depth(json.loads(line)) > MAX_ROW_DEPTH
    else:
        assert nesting_depth(result) <= MAX_ROW_DEPTH
        canonical_hash(result)  # whatever parse_row returns can be hashed


# --- 10. BOM, big integers, lower-case t and z ---------------------------------------------


def test_a_bom_costs_no_row_and_no_hash(home: Home) -> None:
    row = audit_row(severity="low")
    evidence, skips = collected(home, "audits", [BOM + orjson.dumps(row)])
    assert skips == []
    [record] = evidence
    assert record["provenance"]["sig_hash"] == canonical_hash(row)


def test_only_the_first_line_loses_its_bom(home: Home) -> None:
    rows = [BOM, BOM + orjson.dumps(audit_row(audit_id="N2"))]  # a BOM-only first line is blank
    evidence, skips = collected(home, "audits", rows)
    assert evidence == []
    assert [(s.line, s.reason) for s in skips] == [(2, SkipReason.invalid_json)]


def test_a_row_skipped_after_reading_records_the_hash_of_its_bytes(home: Home) -> None:
    """Rows are hashed only when skipped: a first line's BOM is still in the bytes hashed."""
    first = BOM + orjson.dumps({"created_at": RECORDED_AT})  # no audit_id: a row, then a skip
    second = orjson.dumps({"audit_id": "N2", "created_at": "not a time"})
    evidence, skips = collected(home, "audits", [first, second])
    assert evidence == []
    assert [(s.line, s.reason, s.raw_sha256, s.raw_bytes) for s in skips] == [
        (1, SkipReason.missing_id, hashlib.sha256(first).hexdigest(), len(first)),
        (2, SkipReason.invalid_timestamp, hashlib.sha256(second).hexdigest(), len(second)),
    ]


def test_iter_raw_lines_drops_the_bom_but_hashes_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(BOM + b'{"a":1}\n{"b":2}\n')
    first, second = iter_raw_lines(path)
    assert (first.data, first.size, first.offset) == (b'{"a":1}', 10, 0)
    assert first.sha256 == hashlib.sha256(BOM + b'{"a":1}').hexdigest()
    assert (second.data, second.offset) == (b'{"b":2}', 11)


BIG = 123456789012345678901234567890


@pytest.mark.parametrize("native", [BIG, -BIG, 2**64, -(2**63) - 1, 10**400, 2**64 - 1, -(2**63)])
def test_an_integer_id_of_any_size_is_kept_exactly(home: Home, native: int) -> None:
    line = b'{"audit_id":' + str(native).encode() + b',"created_at":"2026-01-01T00:00:00Z"}'
    evidence, skips = collected(home, "audits", [line])
    assert skips == []
    [record] = evidence
    assert record["native_id"] == str(native)
    assert record["id"] == f"audits:{native}"


def test_a_big_integer_anywhere_is_kept_as_its_decimal_string(home: Home) -> None:
    line = orjson.dumps(audit_row(tokens=0)).replace(b'"tokens":0', f'"tokens":{BIG}'.encode())
    nested_line = line.replace(b'"task_id"', f'"extra":[{{"n":{-BIG}}}],"task_id"'.encode())
    evidence, skips = collected(home, "audits", [line, nested_line])
    assert skips == []
    first, second = evidence
    assert first["metadata"]["tokens"] == str(BIG)
    assert second["metadata"]["extra"] == [{"n": str(-BIG)}]
    # the canonical form spells such an integer as its decimal string
    assert first["provenance"]["sig_hash"] == canonical_hash(audit_row(tokens=str(BIG)))


def big_ints_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: big_ints_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [big_ints_as_text(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    return value


NUMBERS = (
    st.integers()
    | st.integers(min_value=2**60, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(st.dictionaries(st.text(max_size=5), NUMBERS | st.lists(NUMBERS, max_size=3), max_size=6))
@settings(max_examples=200, deadline=None)
def test_parse_row_reads_numbers_like_orjson_but_keeps_big_integers(row: dict[str, Any]) -> None:
    line = json.dumps(row).encode()
    parsed = parse_row(line)
    assert parsed == big_ints_as_text(row)
    assert canonical_hash(parsed) == canonical_hash(parse_row(line))  # deterministic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01t00:00:00z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00z", "2026-01-01T00:00:00Z"),
        ("2026-01-01t00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01t10:30:00.5+02:00", "2026-01-01T08:30:00.500000Z"),
        ("2026-01-01 00:00:00z", "2026-01-01T00:00:00Z"),
    ],
)
def test_lower_case_t_and_z_are_rfc_3339(text: str, expected: str) -> None:
    assert normalise_time(text) == expected


@pytest.mark.parametrize(
    "text", ["z", "Z", "yesterdayz", "2026-01-01T25:00:00z", "2026-13-01t00:00z"]
)
def test_a_lower_case_z_does_not_rescue_a_bad_time(text: str) -> None:
    assert normalise_time(text) is None


# --- 8. rule inputs of the wrong type or range ---------------------------------------------

# Every input a built-in rule reads (distilled_facts reads only other streams' categories).
RULE_INPUTS: dict[str, dict[str, list[Any]]] = {
    "scrum_reviews": {
        "verdict": [1, True, ["accepted"], {"v": "accepted"}],
        "attempts": ["1", "2", True, 0, -1, 1.5, "many", [1], {}],
        "markers": ["ACCEPT", 1, [1], ["ACCEPT", None], {"ACCEPT": 1}],
        "tree_split_fired": ["true", 1, "1", [True]],
    },
    "audits": {"severity": [1, True, ["low"], {"level": "low"}, 0.5]},
    "auto_apply": {"outcome": [1, False, ["committed"]]},
    "contract_analyses": {"verdict": [1, True, ["accept"]]},
    "observer_reviews": {"verdict": [1, True, ["accept"], {"accept": True}]},
    "outcomes": {"outcome": [0, True, ["success"]]},
    "mode_experiments": {
        "grounded_fraction": ["0.9", "1", True, False, 1e308, -1e308, -0.1, 1.01, 2, [0.9], {}],
        "validation_results": ["0.9", 0.9, [0.9], True],
    },
    "replay_runs": {
        "verdict": [1, True, ["passed"]],
        "escalated": ["true", 1, "1", "false", 0, [], {}],
    },
}
# well-formed inputs: the base row of each stream earns a category the exports take
GOOD: dict[str, dict[str, Any]] = {
    "scrum_reviews": {"verdict": "accepted", "attempts": 1},
    "audits": {"severity": "low"},
    "auto_apply": {"outcome": "committed"},
    "contract_analyses": {"verdict": "accept"},
    "observer_reviews": {"verdict": "accept"},
    "outcomes": {"outcome": "success"},
    "mode_experiments": {"validation_results": {"grounded_fraction": 0.9}},
    "replay_runs": {"verdict": "passed", "escalated": False},
}


def bad_row(stream: str, field: str, value: Any) -> dict[str, Any]:
    good = dict(GOOD[stream])
    if stream == "mode_experiments" and field == "grounded_fraction":
        return make_row(stream, validation_results={"grounded_fraction": value})
    good[field] = value
    return make_row(stream, **good)


CASES = [
    (stream, field, value)
    for stream, inputs in RULE_INPUTS.items()
    for field, values in inputs.items()
    for value in values
]


@pytest.mark.parametrize(
    ("stream", "field", "value"), CASES, ids=[f"{s}-{f}-{v!r}" for s, f, v in CASES]
)
def test_a_rule_input_of_the_wrong_type_or_range_needs_review(
    stream: str, field: str, value: Any
) -> None:
    verdict = score_row(stream, bad_row(stream, field, value))
    assert verdict.category is H, verdict.rule
    assert verdict.rule.startswith(f"invalid {field}="), verdict.rule
    assert verdict.verdict_bearing  # a fact of the same task cannot rise above it


def test_every_builtin_rule_input_is_checked() -> None:
    with_inputs = set(BUILTIN_SOURCES) - {"distilled_facts"}
    assert set(RULE_INPUTS) == set(GOOD) == with_inputs
    for stream in with_inputs:
        good = score_row(stream, make_row(stream, **GOOD[stream]))
        assert good.category in (Category.accepted, Category.partially_accepted), good.rule
        verdict_field = BUILTIN_SOURCES[stream].spec.verdict_field
        assert verdict_field is None or verdict_field in RULE_INPUTS[stream]


@pytest.mark.parametrize(
    ("stream", "overrides", "expected"),
    [
        ("scrum_reviews", {"verdict": "accepted", "attempts": 1.0}, Category.accepted),
        ("scrum_reviews", {"verdict": "accepted", "attempts": 2.0}, Category.partially_accepted),
        ("scrum_reviews", {"verdict": "accepted", "attempts": None}, Category.accepted),
        ("scrum_reviews", {"verdict": "accepted", "tree_split_fired": False}, Category.accepted),
        ("scrum_reviews", {"verdict": None, "markers": None}, H),
        ("replay_runs", {"verdict": "passed", "escalated": None}, Category.partially_accepted),
        ("replay_runs", {"verdict": "passed", "escalated": DROP}, Category.partially_accepted),
        ("mode_experiments", {"validation_results": None}, H),
    ],
)
def test_well_formed_and_absent_inputs_keep_their_rule(
    stream: str, overrides: dict[str, Any], expected: Category
) -> None:
    verdict = score_row(stream, make_row(stream, **overrides))
    assert verdict.category is expected, verdict.rule
    assert not verdict.rule.startswith("invalid")


def test_a_string_escalated_keeps_a_passed_replay_out_of_rag(home: Home) -> None:
    rows = [
        make_row("replay_runs", run_id="R-1", verdict="passed", escalated="true"),
        make_row("replay_runs", run_id="R-2", verdict="passed", escalated=False),
    ]
    write_stream(home, "replay_runs", rows)
    run_pipeline(home)
    scored = {row["id"]: row for row in read_jsonl(home.scored_dir / "replay_runs.jsonl")}
    assert scored["replay_runs:R-1"]["category"] == "needs_human_review"
    assert (
        scored["replay_runs:R-1"]["rule"]
        == 'invalid escalated="true" (a string): expected a boolean'
    )
    assert scored["replay_runs:R-2"]["category"] == "partially_accepted"
    rag = {row["id"] for row in read_jsonl(home.export_path("rag"))}
    assert rag == {"replay_runs:R-2"}
