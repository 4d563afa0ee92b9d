"""Log formats (issue 12): readers, units and their provenance, mapping power, verdict files.

The fixture in fixtures/formats/ holds every format in the shape real agents write it; the
tests here check each reader rule by rule on small inline logs, and the fixture as a whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill.config import load_config
from distill.errors import ConfigError
from distill.home import Home
from distill.schemas import Category, SkipReason
from distill.sources import ScoringContext, SourceSpec
from distill.sources.formats import FORMATS, ReadContext
from distill.sources.formats.claude_session import ClaudeSession
from distill.sources.formats.openai_chat import openai_chat_row
from distill.sources.paths import check_path, get_path
from distill.sources.rows import evidence_from_unit
from distill.sources.times import epoch_time, record_time
from distill.sources.units import Unit
from distill.sources.verdicts import load_verdicts
from distill.stages import collect, score

from .conftest import FIXTURES, RECORDED_AT, read_jsonl

A, P, R, H = (
    Category.accepted,
    Category.partially_accepted,
    Category.rejected,
    Category.needs_human_review,
)
FORMATS_HOME = FIXTURES / "formats"


def fixture_home(tmp_path: Path) -> Home:
    shutil.copytree(FORMATS_HOME, tmp_path / "home")
    return Home((tmp_path / "home").resolve())


def collected(home: Home) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Collect and score ``home``: scored runs by id, and the skip records."""
    config = load_config(home.config_path)
    assert collect(home, config, recorded_at=RECORDED_AT).passed
    assert score(home, config, recorded_at=RECORDED_AT).passed
    runs = {row["id"]: row for path in home.scored_dir.glob("*.jsonl") for row in read_jsonl(path)}
    return runs, read_jsonl(home.skips_path)


def spec(**fields: Any) -> SourceSpec:
    base = {"name": "s", "id_field": "id", "time_field": "t", "instruction_field": "q"}
    return SourceSpec.model_validate({**base, "response_fields": ["a"], **fields})


def units(fmt: str, path: Path, source_spec: SourceSpec, **limits: int) -> list[Any]:
    context = ReadContext(source_spec, path.name, limits.get("line", 1 << 20), **_unit(limits))
    return list(FORMATS[fmt].read(path, context))


def _unit(limits: dict[str, int]) -> dict[str, Any]:
    unit = {"max_unit_bytes": limits["unit"]} if "unit" in limits else {}
    return {**unit, "recorded_at": RECORDED_AT}


# --- the fixture as a whole ------------------------------------------------------------------


def test_every_format_of_the_fixture_scores_as_expected(tmp_path: Path) -> None:
    home = fixture_home(tmp_path)
    runs, skips = collected(home)
    expected = orjson.loads((FORMATS_HOME / "expected.json").read_bytes())
    got = {
        source: {
            run["native_id"]: run["category"] for run in runs.values() if run["stream"] == source
        }
        for source in expected["categories"]
    }
    assert got == expected["categories"]
    assert (
        sorted([s["stream"], s["source_file"], s["line"], s["reason"]] for s in skips)
        == (expected["skips"])
    )


def test_the_fixture_is_what_its_generator_writes(tmp_path: Path) -> None:
    copy = tmp_path / "formats"
    shutil.copytree(FORMATS_HOME, copy)
    for path in copy.rglob("*"):
        if path.is_file() and path.name != "make_fixture.py":
            path.unlink()
    exec(
        compile((copy / "make_fixture.py").read_text(), "make_fixture", "exec"),
        {"__name__": "__main__", "__file__": str(copy / "make_fixture.py")},
    )
    for path in FORMATS_HOME.rglob("*"):
        if path.is_file():
            assert (copy / path.relative_to(FORMATS_HOME)).read_bytes() == path.read_bytes(), path


def test_provenance_of_documents_sessions_groups_and_lines(tmp_path: Path) -> None:
    home = fixture_home(tmp_path)
    runs, _ = collected(home)
    doc = runs["swe:acme__widgets-101"]["provenance"]
    raw = (home.root / doc["source_file"]).read_bytes()
    assert (doc["line"], doc["line_end"], doc["pointer"]) == (1, raw.count(b"\n"), "")
    assert doc["sig_hash"] == hashlib.sha256(raw).hexdigest()
    session = runs["claude:a1a1a1a1-0000-4000-8000-000000000001"]["provenance"]
    lines = (home.root / session["source_file"]).read_bytes()
    assert (session["line"], session["line_end"], session["pointer"]) == (1, 14, None)
    assert session["sig_hash"] == hashlib.sha256(lines).hexdigest()  # the whole file: one session
    call = runs["chat:chatcmpl-002"]["provenance"]
    assert (call["line"], call["line_end"], call["pointer"]) == (2, None, None)
    line = (home.root / "proxy/calls.jsonl").read_bytes().splitlines()[1]
    assert (
        call["sig_hash"]
        == hashlib.sha256(orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)).hexdigest()
    )


def test_two_sessions_in_one_file_hash_only_their_own_lines(tmp_path: Path) -> None:
    home = fixture_home(tmp_path)
    runs, _ = collected(home)
    path = home.root / "claude/-home-dev-shop/b2b2b2b2-0000-4000-8000-000000000002.jsonl"
    raw = path.read_bytes().splitlines(keepends=True)
    b = runs["claude:b2b2b2b2-0000-4000-8000-000000000002"]["provenance"]
    c = runs["claude:c3c3c3c3-0000-4000-8000-000000000003"]["provenance"]
    assert (b["line"], b["line_end"], c["line"], c["line_end"]) == (1, 6, 7, 11)
    assert b["sig_hash"] == hashlib.sha256(b"".join(raw[:6])).hexdigest()  # snapshot line kept
    assert c["sig_hash"] == hashlib.sha256(b"".join(raw[6:])).hexdigest()


def test_collect_is_deterministic_and_balanced(tmp_path: Path) -> None:
    home = fixture_home(tmp_path)
    config = load_config(home.config_path)
    first = collect(home, config, recorded_at=RECORDED_AT)
    outputs = {p: p.read_bytes() for p in [*home.evidence_dir.glob("*"), home.skips_path]}
    second = collect(home, config, recorded_at=RECORDED_AT)
    assert {p: p.read_bytes() for p in outputs} == outputs
    assert first.balanced and second.records_in == first.records_in == 22


# --- mini-swe-agent / SWE-agent ----------------------------------------------------------------


def trajectory(submission: str = "diff --git a/x.py b/x.py\n", **info: Any) -> dict[str, Any]:
    return {
        "info": {"exit_status": "Submitted", "submission": submission, **info},
        "messages": [
            {"role": "user", "content": "<pr_description>\nFix x\n</pr_description>"},
            {"role": "assistant", "content": "ok", "extra": {"response": {"created": 1763509869}}},
        ],
        "trajectory_format": "mini-swe-agent-1",
    }


def test_a_trajectory_without_instance_id_takes_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "owner__repo-12.traj.json"
    path.write_bytes(orjson.dumps(trajectory(), option=orjson.OPT_INDENT_2))
    [unit] = units("mini_swe_agent", path, spec())
    assert unit.row["instance_id"] == "owner__repo-12" and unit.row["repo"] == "owner/repo"
    assert unit.row["created_at"] == 1763509869 and unit.row["instruction"] == "Fix x"
    assert "config" not in unit.row["info"] and unit.row["files"] == ["x.py"]


def test_a_patch_with_crlf_endings_names_its_files_without_diff_prefixes(tmp_path: Path) -> None:
    """SWE-agent's test trajectories hold CRLF patches: a/ and b/ are never paths."""
    patch = "diff --git a/tests/x.py b/tests/x.py\r\n--- a/tests/x.py\r\n+++ b/tests/x.py\r\n"
    path = tmp_path / "o__r-1.traj"
    path.write_bytes(orjson.dumps({"info": {"submission": patch, "exit_status": "submitted"}}))
    source_spec = SourceSpec.model_validate({"name": "t", **FORMATS["swe_agent"].defaults})
    [unit] = units("swe_agent", path, source_spec)
    source = FORMATS["swe_agent"].source_class(source_spec)
    outcome = evidence_from_unit(source, unit, recorded_at=RECORDED_AT)
    assert outcome.payload is not None and outcome.payload["file_paths"] == ["tests/x.py"]
    assert outcome.payload["created_at"] == RECORDED_AT  # SWE-agent writes no time


def test_a_two_megabyte_trajectory_is_read_once_and_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = trajectory()
    doc["messages"] += [{"role": "user", "content": "o" * 4000}] * 520  # ~2.1 MB pretty-printed
    path = tmp_path / "big__one-1.traj.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    assert path.stat().st_size > 2 << 20
    calls = {"read": 0, "loads": 0}
    read_bytes, loads = Path.read_bytes, orjson.loads

    def counted_read(self: Path) -> bytes:
        calls["read"] += 1
        return read_bytes(self)

    def counted_loads(data: Any) -> Any:
        calls["loads"] += 1
        return loads(data)

    monkeypatch.setattr(Path, "read_bytes", counted_read)
    monkeypatch.setattr("distill.sources.parse.orjson.loads", counted_loads)
    [unit] = units("mini_swe_agent", path, spec())
    assert calls == {"read": 1, "loads": 1} and unit.skip is None
    assert unit.row["instance_id"] == "big__one-1" and len(orjson.dumps(unit.row)) < 10_000


def test_a_document_over_max_unit_bytes_is_one_skip_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "a__b-1.traj.json"
    path.write_bytes(orjson.dumps(trajectory("+" * 2000), option=orjson.OPT_INDENT_2))
    [unit] = units("mini_swe_agent", path, spec(), unit=1024)
    assert unit.skip is SkipReason.unit_too_large and unit.row is None
    assert unit.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"info": {', SkipReason.invalid_json),
        (b"[1, 2]", SkipReason.not_an_object),
        (b'{"a": "\xff"}', SkipReason.invalid_utf8),
        (b"[" * 2000 + b"]" * 2000, SkipReason.too_deeply_nested),
    ],
)
def test_a_document_that_is_no_object_is_one_skip_naming_the_file(
    tmp_path: Path, data: bytes, reason: SkipReason
) -> None:
    path = tmp_path / "bad.traj.json"
    path.write_bytes(data)
    [unit] = units("mini_swe_agent", path, spec())
    assert unit.skip is reason and "bad.traj.json" in unit.detail


def test_a_document_with_a_byte_order_mark_and_exact_big_integers(tmp_path: Path) -> None:
    path = tmp_path / "a__b-2.traj.json"
    body = json.dumps({**trajectory(), "run": 123456789012345678901234567890}).encode()
    path.write_bytes(b"\xef\xbb\xbf" + body)
    [unit] = units("mini_swe_agent", path, spec())
    assert unit.row["run"] == "123456789012345678901234567890"


@pytest.mark.parametrize(
    ("status", "submission", "verdict", "category"),
    [
        ("Submitted", "diff --git a/x b/x", True, A),
        ("Submitted", "diff --git a/x b/x", False, R),
        ("LimitsExceeded", "", None, R),
        ("Submitted", "  ", None, R),
        ("submitted (exit_cost)", "diff --git a/x b/x", None, H),
        ("Submitted", "diff --git a/x b/x", None, H),
    ],
)
def test_trajectory_rules(
    status: str, submission: str, verdict: bool | None, category: Category
) -> None:
    source = FORMATS["mini_swe_agent"].source_class(
        SourceSpec.model_validate({"name": "swe", **FORMATS["mini_swe_agent"].defaults})
    )
    row = {"instance_id": "a__b-1", "exit_status": status, "info": {"submission": submission}}
    signals = source.signals(row) | ({} if verdict is None else {"verdict": verdict})
    view = type("View", (), {"task_id": None, "signals": signals})()
    assert source.score(view, ScoringContext()).category is category


# --- Claude Code ----------------------------------------------------------------------------


def event(kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "sessionId": "s-1",
        "timestamp": "2026-01-01T00:00:00Z",
        "cwd": "/w",
        "message": {"role": kind, "content": content},
        **extra,
    }


def use(tool_id: str, name: str, **args: Any) -> dict[str, Any]:
    return event("assistant", [{"type": "tool_use", "id": tool_id, "name": name, "input": args}])


def result(tool_id: str, text: str, error: bool | None = None) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": text, "is_error": error}
    return event("user", [block])


def say(text: str) -> dict[str, Any]:
    return event("assistant", [{"type": "text", "text": text}])


ASK = event("user", "Fix the tax rounding")
PASSING = [use("t", "Bash", command="pytest -q"), result("t", "3 passed", False)]
FAILING = [use("t", "Bash", command="npm test"), result("t", "Exit code 1\n1 failed", True)]
EDIT = [use("e", "Edit", file_path="/w/src/tax.py"), result("e", "updated")]

CLAUDE_RULES = [
    ("test passed", [ASK, *EDIT, *PASSING, say("Done.")], P, "the last test run passed"),
    ("test failed", [ASK, *EDIT, *FAILING, say("Still red.")], R, "the last test run failed"),
    ("failed then passed", [ASK, *FAILING, *EDIT, *PASSING], P, "passed"),
    ("edited after test", [ASK, *PASSING, *EDIT, say("Done.")], H, "files changed after"),
    ("interrupted", [ASK, *EDIT, event("user", "[Request interrupted by user]")], R, "interrupt"),
    (
        "interrupted, redirected, passed",
        [
            ASK,
            event("user", "[Request interrupted by user for tool use]"),
            event("user", "use integer cents instead"),
            *EDIT,
            *PASSING,
        ],
        P,
        "passed",
    ),
    (
        "tool rejected",
        [
            ASK,
            use("w", "Write", file_path="/w/x.md"),
            result(
                "w",
                "The user doesn't want to proceed with this tool use. The tool use was rejected",
                True,
            ),
        ],
        R,
        "rejected a tool call",
    ),
    (
        "last tool failed",
        [ASK, use("l", "Bash", command="ls nope"), result("l", "Exit code 2")],
        R,
        "last tool call failed",
    ),
    ("nothing to go on", [ASK, say("It computes VAT.")], H, "no verdict"),
    (
        "a failing sidechain is not the session's",
        [ASK, *PASSING, {**FAILING[0], "isSidechain": True}, {**FAILING[1], "isSidechain": True}],
        P,
        "passed",
    ),
    (
        "hook feedback is no request",
        [ASK, *PASSING, event("user", "Stop hook feedback: run the checks", isMeta=True)],
        P,
        "passed",
    ),
]


@pytest.mark.parametrize(
    ("events", "category", "rule"), [c[1:] for c in CLAUDE_RULES], ids=[c[0] for c in CLAUDE_RULES]
)
def test_claude_code_rules(events: list[dict[str, Any]], category: Category, rule: str) -> None:
    session = ClaudeSession("s-1")
    for line in events:
        session.add(line)
    row = session.row()
    source = FORMATS["claude_code"].source_class(
        SourceSpec.model_validate({"name": "claude", **FORMATS["claude_code"].defaults})
    )
    view = type("View", (), {"task_id": None, "signals": source.signals(row)})()
    verdict = source.score(view, ScoringContext())
    assert (verdict.category, rule in verdict.rule) == (category, True), verdict.rule
    assert row["instruction"] == "Fix the tax rounding"


def test_claude_code_session_row() -> None:
    session = ClaudeSession("s-1")
    for line in [
        {"type": "summary", "summary": "x"},
        event("user", "<command-name>/clear</command-name>"),
        ASK,
        *EDIT,
        *PASSING,
        {**say("First part."), "message": {"id": "m9", "content": [{"type": "text", "text": "A"}]}},
        {**say("x"), "message": {"id": "m9", "content": [{"type": "text", "text": "B"}]}},
    ]:
        session.add(line)
    row = session.row()
    assert row["final_text"] == "A\n\nB" and row["files"] == ["src/tax.py"]
    assert row["actions"] == "Files changed: src/tax.py\nCommands run:\n- pytest -q"
    assert (row["events"], row["user_turns"], row["tool_calls"]) == (9, 1, 2)


def test_claude_code_lines_before_the_first_session_join_it(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rows = [{"type": "summary", "summary": "x", "leafUuid": "u"}, ASK, *PASSING]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    [unit] = units(
        "claude_code",
        path,
        SourceSpec.model_validate({"name": "c", **FORMATS["claude_code"].defaults}),
    )
    assert (unit.line, unit.line_end, unit.row["events"]) == (1, 4, 4)
    assert unit.sig_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_with_no_session_id_skips_each_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"type": "summary", "summary": "x"}\n\n{"type": "summary"}\n')
    found = units(
        "claude_code",
        path,
        SourceSpec.model_validate({"name": "c", **FORMATS["claude_code"].defaults}),
    )
    assert [(u.line, u.skip) for u in found] == [
        (1, SkipReason.missing_id),
        (3, SkipReason.missing_id),
    ]


# --- openai_chat -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {
                "request": {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                        {"role": "user", "content": [{"type": "text", "text": "c"}]},
                    ]
                },
                "response": {
                    "id": "x",
                    "created": 5,
                    "choices": [{"message": {"content": "d"}, "finish_reason": "stop"}],
                },
            },
            {"call_id": "x", "created_at": 5, "instruction": "c", "answer": "d", "turns": 3},
        ),
        (
            {"id": "r-1", "timestamp": "2026-01-01T00:00:00Z", "response": {"error": "boom"}},
            {"call_id": "r-1", "created_at": "2026-01-01T00:00:00Z", "error": "boom", "answer": ""},
        ),
        ({"request": "not an object", "response": []}, {"call_id": None, "instruction": ""}),
    ],
)
def test_openai_chat_rows(line: dict[str, Any], expected: dict[str, Any]) -> None:
    row = openai_chat_row(line)
    assert {key: row[key] for key in expected} == expected
    assert "messages" not in row["request"] and "choices" not in row["response"]


# --- mapping power: dotted paths, where, epoch times, group_by ------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("a", 1),
        ("b.c", 2),
        ("b.d.0.e", 3),
        ("b.d.1", None),
        ("b.c.x", None),
        ("x.y", "literal"),
        ("b.d.-1.e", 3),
        ("b.d.-2", None),
    ],
)
def test_dotted_paths(path: str, value: Any) -> None:
    row = {"a": 1, "b": {"c": 2, "d": [{"e": 3}]}, "x.y": "literal"}
    assert get_path(row, path) == value


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b", " a", "a. b"])
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="dotted names"):
        check_path(path)


@given(st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=5), min_size=1, max_size=5))
def test_a_path_reads_what_nesting_put_there(keys: list[str]) -> None:
    row: Any = "leaf"
    for key in reversed(keys):
        row = {key: row}
    assert get_path(row, ".".join(keys)) == "leaf"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1763509869, "2025-11-18T23:51:09Z"),
        (1763509869.5, "2025-11-18T23:51:09.500000Z"),
        (1763509869123, "2025-11-18T23:51:09.123000Z"),
        (99_999_999_999, "5138-11-16T09:46:39Z"),  # just under 1e11: still seconds
        (100_000_000_000, "1973-03-03T09:46:40Z"),  # 1e11 and up: milliseconds
        (True, None),
        (float("nan"), None),
        (1e300, None),
        ("1763509869", None),
    ],
)
def test_epoch_seconds_and_milliseconds(value: Any, expected: str | None) -> None:
    assert epoch_time(value) == expected
    assert record_time(value, epoch=False) is None or isinstance(value, str)


def test_jsonl_mapping_power(tmp_path: Path) -> None:
    (tmp_path / "distill.toml").write_text(
        '[sources.runs]\nid_field = "meta.id"\ntime_field = "meta.at"\n'
        'instruction_field = "task.text"\nresponse_field = "out.0.text"\n'
        'verdict_field = "review.passed"\nverdict_map = { true = "accepted", false = "rejected" }\n'
        'where = { kind = "final", "meta.env" = ["prod", "ci"] }\n'
    )
    rows = [
        {
            "kind": "final",
            "meta": {"id": "a", "at": 1763509869000, "env": "ci"},
            "task": {"text": "q"},
            "out": [{"text": "r"}],
            "review": {"passed": True},
        },
        {"kind": "draft", "meta": {"id": "b", "at": 1763509869, "env": "ci"}},
        {"kind": "final", "meta": {"id": "c", "at": 1763509869, "env": "dev"}},
        {
            "kind": "final",
            "meta": {"id": "d", "at": "2026-01-01T00:00:00Z", "env": "prod"},
            "task": {"text": "q"},
            "out": [{"text": "r"}],
            "review": {"passed": False},
        },
    ]
    (tmp_path / "data" / "_kb").mkdir(parents=True)
    (tmp_path / "data/_kb/runs.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    runs, skips = collected(Home(tmp_path.resolve()))
    assert {i: r["category"] for i, r in runs.items()} == {"runs:a": A, "runs:d": R}
    assert runs["runs:a"]["created_at"] == "2025-11-18T23:51:09Z"
    assert runs["runs:a"]["metadata"] == {"kind": "final"}  # meta, task, out, review consumed
    assert [(s["line"], s["reason"]) for s in skips] == [(2, "filtered_out"), (3, "filtered_out")]


def test_group_by_folds_lines_later_values_winning(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows = [
        {"g": "1", "t": 1, "q": "first", "a": None},
        {"g": "2", "t": 2, "q": "other"},
        {"g": "1", "t": 3, "a": "answer"},
        {"t": 4},
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    found = units("jsonl", path, spec(group_by="g", id_field="g"))
    by_line = {u.line: u for u in found}
    assert by_line[4].skip is SkipReason.missing_id
    one = by_line[1]
    assert one.row == {"g": "1", "t": 3, "q": "first", "a": "answer"}
    assert (one.line, one.line_end, one.pointer) == (1, 3, None)
    raw = path.read_bytes().splitlines(keepends=True)
    assert one.sig_hash == hashlib.sha256(raw[0] + raw[2]).hexdigest()
    small = units("jsonl", path, spec(group_by="g"), unit=1024, line=16)
    assert all(u.skip is not SkipReason.line_too_long for u in small)  # a line may be a unit long


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", None]), st.text(max_size=8)),
        min_size=1,
        max_size=30,
    )
)
def test_folding_loses_no_line(events: list[tuple[str | None, str]]) -> None:
    """Every line is in exactly one unit; a group's hash and size are those of its own lines."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "e.jsonl"
        raw = [orjson.dumps({"g": g, "x": x} if g else {"x": x}) for g, x in events]
        path.write_bytes(b"".join(line + b"\n" for line in raw))
        found = units("jsonl", path, spec(group_by="g"))
    seen: list[int] = []
    for unit in found:
        members = [
            n
            for n, (g, _) in enumerate(events, 1)
            if g is not None and unit.skip is None and g == unit.row["g"]
        ] or [unit.line]
        assert (unit.line, unit.line_end or unit.line) == (members[0], members[-1])
        data = b"".join(raw[n - 1] + b"\n" for n in members)
        if unit.skip is None:
            assert (unit.sha256, unit.size) == (hashlib.sha256(data).hexdigest(), len(data))
        seen += members
    assert sorted(seen) == list(range(1, len(events) + 1))


def test_a_group_over_max_unit_bytes_is_one_skip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"g": "1", "x": "y" * 400}) + b"\n" for _ in range(4)))
    [unit] = units("jsonl", path, spec(group_by="g"), unit=1024)
    assert unit.skip is SkipReason.unit_too_large and (unit.line, unit.line_end) == (1, 4)
    assert unit.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_built_in_streams_keep_iso_only_times(tmp_path: Path) -> None:
    source = load_config(tmp_path / "distill.toml").sources["audits"]
    row = {"audit_id": "A-1", "created_at": 1763509869, "topic": "t", "finding": "f"}
    unit = Unit("audits.jsonl", 1, "0" * 64, 1, row=row)
    outcome = evidence_from_unit(source, unit, recorded_at=RECORDED_AT)
    assert outcome.skip is SkipReason.invalid_timestamp and "ISO-8601" in outcome.detail


# --- verdict side files ----------------------------------------------------------------------


def test_verdict_files_of_every_shape(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "logs/a__b-1/report.json": {"resolved": True, "tests_status": {}},
        "logs/harness/report.json": {"a__b-2": {"resolved": False}, "a__b-3": {"resolved": True}},
        "final.json": {
            "resolved_ids": ["a__b-4"],
            "unresolved_ids": ["a__b-5"],
            "error_ids": ["z"],
        },
        "rows.jsonl": [{"instance_id": "a__b-6", "verdict": "accepted"}],
        "keyed.json": {"a__b-7": "rejected"},
        "array.json": [{"instance_id": "a__b-8", "resolved": False}],
    }
    paths = []
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".jsonl"):
            path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in content))
        else:
            path.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2))
        paths.append(path)
    (tmp_path / "broken.json").write_bytes(b"{")
    paths.append(tmp_path / "broken.json")
    source_spec = SourceSpec.model_validate({"name": "s", **FORMATS["mini_swe_agent"].defaults})
    index = load_verdicts(paths, source_spec, [p.name for p in paths], 1 << 20)
    assert index.verdicts == {
        "a__b-1": True,
        "a__b-2": False,
        "a__b-3": True,
        "a__b-4": True,
        "a__b-5": False,
        "a__b-6": "accepted",
        "a__b-7": "rejected",
        "a__b-8": False,
    }
    assert len(index.warnings) == 1 and "broken.json" in index.warnings[0]


def test_a_verdicts_file_overrides_the_row_and_maps_booleans(tmp_path: Path) -> None:
    (tmp_path / "distill.toml").write_text(
        '[sources.obs]\nid_field = "id"\ntime_field = "t"\ninstruction_field = "q"\n'
        'response_field = "a"\nverdict_field = "v"\nverdicts = "verdicts/*.json"\n'
    )
    (tmp_path / "data" / "_kb").mkdir(parents=True)
    (tmp_path / "verdicts").mkdir()
    (tmp_path / "verdicts/v.json").write_text(json.dumps({"1": True, "2": False}))
    rows = [{"id": i, "t": "2026-01-01T00:00:00Z", "q": "q", "a": "a", "v": "true"} for i in "123"]
    (tmp_path / "data/_kb/obs.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    runs, _ = collected(Home(tmp_path.resolve()))
    assert {i: r["category"] for i, r in runs.items()} == {"obs:1": A, "obs:2": R, "obs:3": A}


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message", "hint"),
    [
        ('format = "jsonl"\nid_feild = "x"', "unknown key(s) ['id_feild']", "dotted names"),
        ('id_field = "a..b"', "is not a field path", "dotted names"),
        ('where = { "a." = 1 }', "is not a field path", "dotted names"),
        ('format = "cursor"', "format 'cursor' is not one of", "claude_code"),
        ('format = "claude_code"\ngroup_by = ""', "is not a field path", "dotted names"),
    ],
)
def test_config_errors_say_how_paths_are_written(
    tmp_path: Path, table: str, message: str, hint: str
) -> None:
    base = 'time_field = "t"\ninstruction_field = "q"\nresponse_field = "a"\n'
    if "id_field" not in table and "format" not in table:
        base += 'id_field = "i"\n'
    (tmp_path / "distill.toml").write_text(f"[sources.x]\n{base}{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "distill.toml")
    assert message in str(caught.value) and hint in caught.value.hint


def test_a_format_table_needs_only_its_format_and_path(tmp_path: Path) -> None:
    (tmp_path / "distill.toml").write_text(
        '[sources.c]\nformat = "claude_code"\npath = "logs/**/*.jsonl"\n'
        'response_field = "final_text"\n'
    )
    source = load_config(tmp_path / "distill.toml").sources["c"]
    assert source.spec.response_fields == ["final_text"] and source.spec.group_by == "sessionId"
    assert type(source).__name__ == "ClaudeCodeSource"
