"""JSONL plumbing: streaming reads, canonical JSON, atomic and locked writes, collect's skips."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.config import CollectSettings, Config
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import (
    append_line_locked,
    atomic_writer,
    canonical_hash,
    canonical_json,
    iter_json_objects,
    iter_raw_lines,
    refuse_bad_lines,
)
from distill.schemas import SkipReason, SkipRecord
from distill.stages import collect

from .conftest import RECORDED_AT, read_jsonl, write_stream


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- iter_raw_lines -----------------------------------------------------------------------


def test_line_numbers_are_one_based_and_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a":1}\n\n   \n{"b":2}\n')
    lines = list(iter_raw_lines(path))
    assert [(raw.line_no, raw.data) for raw in lines] == [
        (1, b'{"a":1}'),
        (2, b""),
        (3, b"   "),
        (4, b'{"b":2}'),
    ]
    assert all(raw.sha256 == sha(raw.data or b"") for raw in lines)


def test_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"one\ntwo")
    assert [raw.data for raw in iter_raw_lines(path)] == [b"one", b"two"]


def test_crlf_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a":1}\r\n\r\n{"b":2}\r\n')
    lines = list(iter_raw_lines(path))
    assert [(raw.line_no, raw.data, raw.size) for raw in lines] == [
        (1, b'{"a":1}', 7),
        (2, b"", 0),
        (3, b'{"b":2}', 7),
    ]
    assert lines[0].sha256 == sha(b'{"a":1}')  # the same line hashes the same with LF or CRLF
    assert [raw.offset for raw in lines] == [0, 9, 11]


def test_over_limit_line_is_hashed_not_loaded(tmp_path: Path) -> None:
    huge = b'{"blob":"' + b"x" * (5_000_000 - 11) + b'"}'
    assert len(huge) == 5_000_000
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a":1}\n' + huge + b'\n{"b":2}\n')
    tracemalloc.start()
    try:
        lines = list(iter_raw_lines(path, max_line_bytes=1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"peak {peak} bytes: the long line was loaded"
    first, big, last = lines
    assert (first.line_no, first.data) == (1, b'{"a":1}')
    assert (big.line_no, big.data, big.size) == (2, None, 5_000_000)
    assert big.sha256 == sha(huge)
    assert big.offset == 8
    assert (last.line_no, last.data, last.offset) == (3, b'{"b":2}', 8 + 5_000_001)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_over_limit_line_with_either_ending(tmp_path: Path, ending: bytes) -> None:
    body = b"y" * 3000
    path = tmp_path / "s.jsonl"
    path.write_bytes(body + ending + b"ok" + ending)
    big, ok = iter_raw_lines(path, max_line_bytes=1024)
    assert (big.data, big.size, big.sha256) == (None, 3000, sha(body))
    assert (ok.line_no, ok.data) == (2, b"ok")


def test_line_exactly_at_the_limit_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"a" * 1024 + b"\n" + b"b" * 1025 + b"\n")
    at, over = iter_raw_lines(path, max_line_bytes=1024)
    assert at.data == b"a" * 1024
    assert (over.data, over.size) == (None, 1025)


def test_crlf_line_exactly_at_the_limit_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"a" * 1024 + b"\r\n")
    [raw] = iter_raw_lines(path, max_line_bytes=1024)
    assert (raw.data, raw.size, raw.sha256) == (b"a" * 1024, 1024, sha(b"a" * 1024))


def test_over_limit_line_keeps_a_cr_at_a_chunk_boundary(tmp_path: Path) -> None:
    body = b"a" * 1025 + b"b" * 65535 + b"\r" + b"c" * 10
    path = tmp_path / "s.jsonl"
    path.write_bytes(body + b"\n")
    [raw] = iter_raw_lines(path, max_line_bytes=1024)
    assert (raw.size, raw.sha256) == (len(body), sha(body))


BOM = b"\xef\xbb\xbf"
# Line bodies never contain '\n' and never end in '\r' (that would be a CRLF ending).
LINE = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r"))


@given(st.lists(LINE, max_size=20), st.integers(min_value=1, max_value=200), st.booleans())
@settings(max_examples=60, deadline=None)
def test_iter_raw_lines_matches_a_plain_split(
    lines: list[bytes], limit: int, trailing_newline: bool
) -> None:
    content = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.jsonl"
        path.write_bytes(content)
        got = list(iter_raw_lines(path, max_line_bytes=limit))
    lines = content.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # a final newline ends the last line, it does not start a new one
    assert [raw.line_no for raw in got] == list(range(1, len(lines) + 1))
    for raw, body in zip(got, lines, strict=True):
        assert raw.size == len(body)
        assert raw.sha256 == sha(body)
        content_of = body.removeprefix(BOM) if raw.line_no == 1 else body  # a BOM is no content
        assert raw.data == (content_of if len(body) <= limit else None)
        assert content[raw.offset : raw.offset + len(body)] == body


# --- canonical JSON -----------------------------------------------------------------------


BAD_LINES = [b'{"a": 1}', b"", b"[1, 2]", b"{not json", b'{"b": "' + b"x" * 64 + b'"}', b'{"c": 3}']


def test_iter_json_objects_passes_bad_lines_over_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    seen: list[tuple[int, str]] = []
    rows = list(
        iter_json_objects(path, 32, on_bad=lambda raw, why: seen.append((raw.line_no, why)))
    )
    assert [(raw.line_no, row) for raw, row in rows] == [(1, {"a": 1}), (6, {"c": 3})]
    assert [line for line, _ in seen] == [3, 4, 5]  # the blank line 2 is no bad line
    assert seen[0][1] == "not a JSON object" and seen[1][1].startswith("not JSON")
    assert seen[2][1].endswith("over the limit of 32")
    with pytest.raises(DistillError, match=r"rows\.jsonl:3 is not a JSON object") as refused:
        list(iter_json_objects(path, 32, on_bad=refuse_bad_lines(path, "rewrite it")))
    assert refused.value.hint == "rewrite it"


def test_canonical_json_is_sorted_compact_utf8() -> None:
    obj = {"b": [1, {"z": None, "y": True}], "a": "caf\u00e9 \u2713", "\u00e4": 1.5}
    assert canonical_json(obj) == (
        '{"a":"caf\u00e9 \u2713","b":[1,{"y":true,"z":null}],"\u00e4":1.5}'.encode()
    )
    assert b"\\u" not in canonical_json(obj)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=25,
)


def reverse_key_order(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: reverse_key_order(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reverse_key_order(item) for item in value]
    return value


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=8))
@settings(max_examples=80, deadline=None)
def test_canonical_json_is_key_order_independent(obj: dict[str, Any]) -> None:
    encoded = canonical_json(obj)
    assert canonical_json(reverse_key_order(obj)) == encoded
    assert canonical_hash(reverse_key_order(obj)) == canonical_hash(obj) == sha(encoded)
    assert encoded == json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert orjson.loads(encoded) == obj


# --- atomic_writer ------------------------------------------------------------------------


def test_atomic_writer_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    seen: list[bytes] = []
    with atomic_writer(path, verify=lambda tmp: seen.append(tmp.read_bytes())) as handle:
        handle.write(b"new\n")
        assert path.read_bytes() == b"old\n"  # readers see the old file until the rename
    assert path.read_bytes() == b"new\n"
    assert seen == [b"new\n"]  # verify saw the complete file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


@pytest.mark.parametrize("existed", [True, False])
def test_atomic_writer_keeps_the_old_file_on_error(tmp_path: Path, existed: bool) -> None:
    path = tmp_path / "out.jsonl"
    if existed:
        path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_writer(path) as handle:
        handle.write(b"half a file")
        raise RuntimeError("disk on fire")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.jsonl"] if existed else [])
    if existed:
        assert path.read_bytes() == b"old\n"


def test_atomic_writer_verify_failure_prevents_the_rename(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")

    def refuse(tmp: Path) -> None:
        assert tmp != path and tmp.read_bytes() == b"forbidden\n"
        raise ValueError("forbidden row")

    with pytest.raises(ValueError, match="forbidden row"), atomic_writer(path, refuse) as handle:
        handle.write(b"forbidden\n")
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# --- append_line_locked -------------------------------------------------------------------

WRITERS, LINES_EACH = 8, 200


def _append_many(path: str, writer: int) -> None:
    for index in range(LINES_EACH):
        payload = f"{writer}-{index}-" * 400  # ~3 KB: a torn or interleaved write would show
        append_line_locked(Path(path), orjson.dumps({"w": writer, "i": index, "p": payload}))


def test_append_line_locked_from_many_processes(tmp_path: Path) -> None:
    path = tmp_path / "replay_runs.jsonl"
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(WRITERS) as pool:
        pool.starmap(_append_many, [(str(path), writer) for writer in range(WRITERS)])
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    rows = [orjson.loads(line) for line in raw.split(b"\n")[:-1]]
    assert len(rows) == WRITERS * LINES_EACH
    assert {(row["w"], row["i"]) for row in rows} == {
        (w, i) for w in range(WRITERS) for i in range(LINES_EACH)
    }
    assert all(row["p"] == f"{row['w']}-{row['i']}-" * 400 for row in rows)
    for writer in range(WRITERS):  # each writer's lines stay in its own order
        assert [row["i"] for row in rows if row["w"] == writer] == list(range(LINES_EACH))


def test_append_line_locked_adds_the_newline(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "log.jsonl"
    append_line_locked(path, b'{"a":1}')
    append_line_locked(path, b'{"b":2}\n')
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'


# --- collect: every bad line is skipped with a reason, never raised -------------------------

OBS = {
    "observation_id": "O-1",
    "created_at": "2025-01-01T00:00:00Z",
    "prompt": "p",
    "response": "r",
}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"observation_id": "O-1",}', "invalid_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"observation_id": "\xff\xfe"}', "invalid_utf8"),
        (orjson.dumps({**OBS, "observation_id": None}), "missing_id"),
        (orjson.dumps({k: v for k, v in OBS.items() if k != "observation_id"}), "missing_id"),
        (orjson.dumps({**OBS, "observation_id": True}), "missing_id"),
        (orjson.dumps({**OBS, "observation_id": ["O-1"]}), "missing_id"),
        (orjson.dumps({k: v for k, v in OBS.items() if k != "created_at"}), "missing_timestamp"),
        (orjson.dumps({**OBS, "created_at": ""}), "missing_timestamp"),
        (orjson.dumps({**OBS, "created_at": "yesterday"}), "invalid_timestamp"),
        (orjson.dumps({**OBS, "created_at": 1735689600}), "invalid_timestamp"),
        (b'{"observation_id":"O-9","pad":"' + b"z" * 200 + b'"}', "line_too_long"),
    ],
)
def test_collect_skip_reasons(home: Home, line: bytes, reason: str) -> None:
    write_stream(home, "observer_reviews", [OBS, line, {**OBS, "observation_id": "O-2"}])
    config = Config(collect=CollectSettings(max_line_bytes=128))
    report = collect(home, config, recorded_at=RECORDED_AT)
    assert (report.records_in, report.records_out, dict(report.skipped)) == (3, 2, {reason: 1})
    assert report.passed
    [skip] = [SkipRecord.model_validate(row) for row in read_jsonl(home.skips_path)]
    assert (skip.stream, skip.line, skip.reason.value) == ("observer_reviews", 2, reason)
    assert skip.source_file == "data/_kb/observer_reviews.jsonl"
    assert (skip.raw_sha256, skip.raw_bytes) == (sha(line), len(line))
    evidence = read_jsonl(home.evidence_dir / "observer_reviews.jsonl")
    assert [(row["id"], row["provenance"]["line"]) for row in evidence] == [
        ("observer_reviews:O-1", 1),
        ("observer_reviews:O-2", 3),
    ]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_collect_skips_a_time_that_overflows_utc(home: Home, moment: str) -> None:
    write_stream(
        home, "observer_reviews", [OBS, {**OBS, "observation_id": "O-2", "created_at": moment}]
    )
    report = collect(home, Config(), recorded_at=RECORDED_AT)
    assert report.skipped == {"invalid_timestamp": 1}


TIMES = st.sampled_from(
    ["2025-01-01T00:00:00Z", "2025-06-30T23:59:59.5+02:00", "2025-01-01", "", "soon", None, 17]
)
IDS = st.sampled_from(["O-1", "O-2", "", "  ", None, 7, True, 1.5, ["x"], {"a": 1}])
ROWS = st.fixed_dictionaries(
    {"observation_id": IDS, "created_at": TIMES},
    optional={
        "task_id": IDS,
        "prompt": JSON_VALUES,
        "response": JSON_VALUES,
        "verdict": JSON_VALUES,
        "file": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)
RAW_LINES = (
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b""))
    | JSON_VALUES.map(orjson.dumps)
    | ROWS.map(orjson.dumps)
)
SKIP_REASONS = {reason.value for reason in SkipReason}


@given(st.lists(RAW_LINES, max_size=25))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_collect_accounts_for_every_line(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Home(Path(folder))
        write_stream(home, "observer_reviews", lines)
        report = collect(
            home, Config(collect=CollectSettings(max_line_bytes=100)), recorded_at=RECORDED_AT
        )
        lines_content = [line.removeprefix(BOM) if i == 0 else line for i, line in enumerate(lines)]
        non_blank = sum(1 for line in lines_content if line.strip())
        assert report.records_in == non_blank
        assert report.records_in == report.records_out + report.skipped_total
        assert report.passed
        assert set(report.skipped) <= SKIP_REASONS
        skips = [SkipRecord.model_validate(row) for row in read_jsonl(home.skips_path)]
        evidence = read_jsonl(home.evidence_dir / "observer_reviews.jsonl")
        assert len(skips) == report.skipped_total
        assert len(evidence) == report.records_out
        physical = {index + 1: line for index, line in enumerate(lines)}
        for skip in skips:
            assert skip.raw_sha256 == sha(physical[skip.line].rstrip(b"\r"))
        assert sorted([s.line for s in skips] + [e["provenance"]["line"] for e in evidence]) == [
            number for number, line in enumerate(lines_content, 1) if line.strip()
        ]
