"""Category rules of every source stream (docs/streams.md), row by row."""

from __future__ import annotations

from typing import Any

import pytest

from distill.config import load_config
from distill.errors import ConfigError
from distill.home import Home
from distill.schemas import Category
from distill.sources import BUILTIN_SOURCES
from distill.sources.rows import evidence_from_row
from distill.stages import collect, score

from .conftest import RECORDED_AT, read_jsonl, write_stream
from .helpers.rows import BASE_ROWS, DROP, T0, make_row, score_row, to_evidence

A, P, R, H = (
    Category.accepted,
    Category.partially_accepted,
    Category.rejected,
    Category.needs_human_review,
)


def scored_categories(home: Home, streams: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Write the streams, run collect + score, and return {record id: category}."""
    for name, rows in streams.items():
        write_stream(home, name, rows)
    config = load_config(home.config_path)
    assert collect(home, config, recorded_at=RECORDED_AT).passed
    assert score(home, config, recorded_at=RECORDED_AT).passed
    return {
        row["id"]: row["category"]
        for path in sorted(home.scored_dir.glob("*.jsonl"))
        for row in read_jsonl(path)
    }


# --- rule tables: one row per documented case -------------------------------------------------

RULES: list[tuple[str, dict[str, Any], Category]] = [
    # scrum_reviews: verdict + attempts, then markers, else review
    ("scrum_reviews", {"verdict": "accepted", "attempts": 1}, A),
    ("scrum_reviews", {"verdict": "accepted"}, A),  # attempts defaults to 1
    ("scrum_reviews", {"verdict": "accepted", "attempts": 2}, P),
    ("scrum_reviews", {"verdict": "accepted", "attempts": 7}, P),
    ("scrum_reviews", {"verdict": "rejected"}, R),
    ("scrum_reviews", {"verdict": "rejected", "attempts": 1}, R),
    ("scrum_reviews", {"verdict": "rejected", "markers": ["ACCEPT"]}, R),  # verdict decides
    ("scrum_reviews", {"verdict": "accepted", "markers": ["REJECT"]}, A),
    ("scrum_reviews", {"markers": ["ACCEPT"]}, A),
    ("scrum_reviews", {"markers": ["PARTIAL"]}, P),
    ("scrum_reviews", {"markers": ["REJECT"]}, R),
    ("scrum_reviews", {"markers": ["ACCEPT", "REJECT"]}, R),  # never the more trusting one
    ("scrum_reviews", {"markers": []}, H),
    ("scrum_reviews", {"markers": ["LGTM"]}, H),
    ("scrum_reviews", {}, H),
    # audits: severity
    ("audits", {"severity": "info"}, A),
    ("audits", {"severity": "low"}, A),
    ("audits", {"severity": "medium"}, P),
    ("audits", {"severity": "high"}, R),
    ("audits", {"severity": "critical"}, R),
    ("audits", {"severity": "blocker"}, H),
    ("audits", {"severity": ""}, H),
    ("audits", {}, H),
    # auto_apply: outcome
    ("auto_apply", {"outcome": "committed"}, A),
    ("auto_apply", {"outcome": "build_red_reverted"}, R),
    ("auto_apply", {"outcome": "tests_failed"}, R),
    ("auto_apply", {"outcome": "skipped"}, H),
    ("auto_apply", {}, H),
    # contract_analyses: verdict
    ("contract_analyses", {"verdict": "accept"}, A),
    ("contract_analyses", {"verdict": "reject"}, R),
    ("contract_analyses", {"verdict": "unsure"}, H),
    ("contract_analyses", {}, H),
    # observer_reviews: verdict
    ("observer_reviews", {"verdict": "accept"}, A),
    ("observer_reviews", {"verdict": "reject"}, R),
    ("observer_reviews", {"verdict": "escalate"}, H),
    ("observer_reviews", {}, H),
    # outcomes: outcome
    ("outcomes", {"outcome": "success"}, A),
    ("outcomes", {"outcome": "failure"}, R),
    ("outcomes", {"outcome": "partial"}, H),
    ("outcomes", {}, H),
    # mode_experiments: grounded_fraction thresholds, boundaries included
    ("mode_experiments", {"validation_results": {"grounded_fraction": 1.0}}, A),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 0.8}}, A),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 0.7999}}, P),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 0.5}}, P),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 0.4999}}, R),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 0}}, R),
    ("mode_experiments", {"validation_results": {"grounded_fraction": 1}}, A),
    ("mode_experiments", {"validation_results": {"grounded_fraction": None}}, H),
    ("mode_experiments", {"validation_results": {"citations": 3}}, H),
    ("mode_experiments", {"validation_results": {}}, H),
    ("mode_experiments", {}, H),
    # replay_runs on their own (the observer upgrade is tested through the pipeline)
    ("replay_runs", {"verdict": "passed", "escalated": False}, P),
    ("replay_runs", {"verdict": "passed", "escalated": DROP}, P),
    ("replay_runs", {"verdict": "failed"}, R),
    ("replay_runs", {"verdict": "failed", "escalated": True}, R),
    ("replay_runs", {"verdict": "passed", "escalated": True}, H),
    # distilled_facts with no other stream's verdict
    ("distilled_facts", {}, H),
]


@pytest.mark.parametrize(
    ("stream", "overrides", "expected"),
    RULES,
    ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(RULES)],
)
def test_category_rule(stream: str, overrides: dict[str, Any], expected: Category) -> None:
    verdict = score_row(stream, make_row(stream, **overrides))
    assert verdict.category is expected, verdict.rule
    assert verdict.rule  # every decision names the rule that made it


def test_every_builtin_stream_has_a_rule_row() -> None:
    assert {stream for stream, _, _ in RULES} == set(BUILTIN_SOURCES)


@pytest.mark.parametrize(
    ("stream", "value", "expected"),
    [
        ("audits", {"severity": "HIGH"}, R),
        ("audits", {"severity": " Info "}, A),
        ("observer_reviews", {"verdict": "Accept"}, A),
        ("outcomes", {"outcome": "FAILURE"}, R),
        ("auto_apply", {"outcome": "Committed"}, A),
    ],
)
def test_verdict_maps_ignore_case(stream: str, value: dict[str, Any], expected: Category) -> None:
    assert score_row(stream, make_row(stream, **value)).category is expected


# --- instruction → response ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "overrides", "instruction", "response"),
    [
        (
            "scrum_reviews",
            {},
            "Review the invoice rounding change",
            "Rounding now uses banker's rounding.",
        ),
        (
            "scrum_reviews",
            {"prompt": DROP},
            "Review src/billing/invoice.py",
            "Rounding now uses banker's rounding.",
        ),
        (
            "audits",
            {},
            "Token expiry audit",
            "Tokens expire after 15 minutes.\n\nsee src/auth/tokens.py",
        ),
        ("audits", {"evidence": DROP}, "Token expiry audit", "Tokens expire after 15 minutes."),
        (
            "auto_apply",
            {},
            "Add a retry to the webhook client",
            "--- a/src/app.py\n+++ b/src/app.py\n+retry(3)",
        ),
        (
            "contract_analyses",
            {},
            "Is the refund endpoint idempotent?",
            "Yes: the refund id is the idempotency key.",
        ),
        (
            "contract_analyses",
            {"question": DROP},
            "Analyse PaymentsAPI",
            "Yes: the refund id is the idempotency key.",
        ),
        (
            "contract_analyses",
            {"question": "  "},
            "Analyse PaymentsAPI",
            "Yes: the refund id is the idempotency key.",
        ),
        (
            "observer_reviews",
            {},
            "Explain the retry policy",
            "Three retries with capped exponential backoff.",
        ),
        ("distilled_facts", {}, "Fact for T-1", "Refund ids are idempotency keys."),
        ("outcomes", {}, "Outcome of T-1", "The migration shipped without downtime."),
        ("mode_experiments", {}, "How do refunds work?", "Refunds reuse the charge id."),
        ("replay_runs", {}, "How should I add a retry?", "Wrap the call in retry(3)."),
    ],
)
def test_instruction_and_response(
    stream: str, overrides: dict[str, Any], instruction: str, response: str
) -> None:
    evidence = to_evidence(stream, make_row(stream, **overrides))
    assert evidence.instruction == instruction
    assert evidence.response == response
    assert evidence.id == f"{stream}:{BASE_ROWS[stream][BUILTIN_SOURCES[stream].spec.id_field]}"
    assert evidence.task_id == "T-1"


def test_tree_split_review_is_the_shards_in_index_order() -> None:
    shards = [
        {"index": 2, "text": "third: rounding tests"},
        {"index": 0, "text": "first: the API"},
        {"index": 10, "text": "last: docs"},
        {"index": 1, "text": "second: the schema"},
    ]
    row = make_row(
        "scrum_reviews",
        tree_split_fired=True,
        shards=shards,
        review="the unsplit review",
        verdict="accepted",
    )
    evidence = to_evidence("scrum_reviews", row)
    assert evidence.response == (
        "first: the API\nsecond: the schema\nthird: rounding tests\nlast: docs"
    )
    assert score_row("scrum_reviews", row).category is A


@pytest.mark.parametrize("fired", [False, None])
def test_shards_are_ignored_unless_tree_split_fired(fired: bool | None) -> None:
    row = make_row("scrum_reviews", shards=[{"index": 0, "text": "shard text"}])
    if fired is not None:
        row["tree_split_fired"] = fired
    assert to_evidence("scrum_reviews", row).response == "Rounding now uses banker's rounding."


def test_tree_split_through_the_pipeline(home: Home) -> None:
    row = make_row(
        "scrum_reviews",
        review=DROP,
        tree_split_fired=True,
        shards=[{"index": 1, "text": "B"}, {"index": 0, "text": "A"}, {"index": 2, "text": "C"}],
        markers=["PARTIAL"],
    )
    scored_categories(home, {"scrum_reviews": [row]})
    [scored] = read_jsonl(home.scored_dir / "scrum_reviews.jsonl")
    assert scored["response"] == "A\nB\nC"
    assert scored["category"] == "partially_accepted"


# --- derived fields and metadata ----------------------------------------------------------


def test_unknown_fields_land_in_metadata_and_contract_fields_do_not() -> None:
    row = make_row(
        "observer_reviews",
        verdict="accept",
        reviewer={"name": "ada", "team": "billing"},
        tokens_used=1234,
        tags=["webhooks", "retries"],
    )
    evidence = to_evidence("observer_reviews", row)
    assert evidence.metadata["reviewer"] == {"name": "ada", "team": "billing"}
    assert evidence.metadata["tokens_used"] == 1234
    assert evidence.metadata["tags"] == ["webhooks", "retries"]
    consumed = {"observation_id", "created_at", "task_id", "prompt", "response", "verdict", "file"}
    assert consumed.isdisjoint(evidence.metadata)


def test_derived_fields_file_paths_and_validation_steps() -> None:
    row = make_row(
        "audits",
        finding="Tokens leak.\n- Verify src/auth/session.py clears them\n2. check the logs",
        evidence=DROP,
    )
    evidence = to_evidence("audits", row)
    assert evidence.file_paths == ["src/auth/session.py", "src/auth/tokens.py"]
    assert evidence.validation_steps == [
        "Verify src/auth/session.py clears them",
        "check the logs",
    ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"observation_id": DROP}, "missing_id"),
        ({"observation_id": ""}, "missing_id"),
        ({"observation_id": None}, "missing_id"),
        ({"created_at": DROP}, "missing_timestamp"),
        ({"created_at": " "}, "missing_timestamp"),
        ({"created_at": "last tuesday"}, "invalid_timestamp"),
    ],
)
def test_rows_without_provenance_are_skipped(overrides: dict[str, Any], reason: str) -> None:
    outcome = evidence_from_row(
        BUILTIN_SOURCES["observer_reviews"],
        make_row("observer_reviews", **overrides),
        source_file="data/_kb/observer_reviews.jsonl",
        line=3,
        recorded_at=RECORDED_AT,
    )
    assert outcome.evidence is None
    assert outcome.skip is not None and outcome.skip.value == reason


def test_times_are_normalised_to_utc() -> None:
    row = make_row("observer_reviews", created_at="2025-03-01T12:30:00+02:00")
    assert to_evidence("observer_reviews", row).created_at == "2025-03-01T10:30:00Z"


# --- cross-stream rules, through collect + score ------------------------------------------


def _obs(native: str, task: str, verdict: str | None) -> dict[str, Any]:
    return make_row("observer_reviews", observation_id=native, task_id=task, verdict=verdict)


def _fact(native: str, task: str) -> dict[str, Any]:
    return make_row("distilled_facts", fact_id=native, task_id=task)


def test_distilled_facts_take_the_most_conservative_verdict_of_their_task(home: Home) -> None:
    streams = {
        "observer_reviews": [
            _obs("O-mixed", "T-mixed", "accept"),
            _obs("O-ok", "T-ok", "accept"),
            _obs("O-part", "T-part", "accept"),
            _obs("O-none", "T-none", None),  # no verdict: not verdict-bearing
            _obs("O-unmapped", "T-unmapped", "escalate"),  # verdict-bearing, needs review
        ],
        "audits": [
            make_row("audits", audit_id="AU-mixed", task_id="T-mixed", severity="critical"),
            make_row("audits", audit_id="AU-part", task_id="T-part", severity="medium"),
            make_row("audits", audit_id="AU-ok", task_id="T-ok", severity="low"),
        ],
        "mode_experiments": [
            make_row(
                "mode_experiments",
                experiment_id="ME-part",
                task_id="T-part",
                validation_results={"grounded_fraction": 0.9},
            ),
        ],
        "distilled_facts": [
            _fact("F-mixed", "T-mixed"),
            _fact("F-ok", "T-ok"),
            _fact("F-part", "T-part"),
            _fact("F-none", "T-none"),
            _fact("F-unmapped", "T-unmapped"),
            _fact("F-alone", "T-alone"),
            # a fact never lifts another fact of its task
            _fact("F-alone-2", "T-alone"),
        ],
    }
    categories = scored_categories(home, streams)
    assert {key: value for key, value in categories.items() if key.startswith("distilled")} == {
        "distilled_facts:F-mixed": "rejected",
        "distilled_facts:F-ok": "accepted",
        "distilled_facts:F-part": "partially_accepted",
        "distilled_facts:F-none": "needs_human_review",
        "distilled_facts:F-unmapped": "needs_human_review",
        "distilled_facts:F-alone": "needs_human_review",
        "distilled_facts:F-alone-2": "needs_human_review",
    }


def test_facts_count_markers_and_outcomes_of_their_task(home: Home) -> None:
    streams = {
        "scrum_reviews": [
            make_row("scrum_reviews", review_id="SR-a", task_id="T-a", markers=["ACCEPT"]),
            make_row("scrum_reviews", review_id="SR-b", task_id="T-b", markers=["ACCEPT"]),
        ],
        "outcomes": [make_row("outcomes", outcome_id="OU-b", task_id="T-b", outcome="failure")],
        "distilled_facts": [_fact("F-a", "T-a"), _fact("F-b", "T-b")],
    }
    categories = scored_categories(home, streams)
    assert categories["distilled_facts:F-a"] == "accepted"
    assert categories["distilled_facts:F-b"] == "rejected"


def _run(native: str, task: str, verdict: str, escalated: bool = False) -> dict[str, Any]:
    return make_row(
        "replay_runs", run_id=native, task_id=task, verdict=verdict, escalated=escalated
    )


def test_replay_runs_and_the_observer_upgrade(home: Home) -> None:
    streams = {
        "observer_reviews": [
            _obs("O-1", "T-observed", "accept"),
            _obs("O-2", "T-refused", "reject"),
            _obs("O-3", "T-upper", "ACCEPT"),
            _obs("O-4", "T-undecided", "escalate"),
        ],
        "replay_runs": [
            _run("RUN-plain", "T-unobserved", "passed"),
            _run("RUN-upgraded", "T-observed", "passed"),
            _run("RUN-upper", "T-upper", "passed"),
            _run("RUN-refused", "T-refused", "passed"),
            _run("RUN-undecided", "T-undecided", "passed"),
            _run("RUN-failed", "T-observed", "failed"),
            _run("RUN-escalated", "T-observed", "passed", escalated=True),
            _run("RUN-escalated-2", "T-unobserved", "passed", escalated=True),
        ],
    }
    categories = scored_categories(home, streams)
    assert {key: value for key, value in categories.items() if key.startswith("replay")} == {
        "replay_runs:RUN-plain": "partially_accepted",
        "replay_runs:RUN-upgraded": "accepted",
        "replay_runs:RUN-upper": "accepted",
        "replay_runs:RUN-refused": "partially_accepted",
        "replay_runs:RUN-undecided": "partially_accepted",
        "replay_runs:RUN-failed": "rejected",
        "replay_runs:RUN-escalated": "needs_human_review",
        "replay_runs:RUN-escalated-2": "needs_human_review",
    }


def test_only_observer_reviews_upgrade_a_replay(home: Home) -> None:
    streams = {
        "contract_analyses": [
            make_row("contract_analyses", analysis_id="CA-1", task_id="T-x", verdict="accept")
        ],
        "outcomes": [make_row("outcomes", outcome_id="OU-1", task_id="T-x", outcome="success")],
        "replay_runs": [_run("RUN-x", "T-x", "passed")],
    }
    assert scored_categories(home, streams)["replay_runs:RUN-x"] == "partially_accepted"


def test_pipeline_scores_every_stream_by_its_rule(home: Home) -> None:
    """The same rule table, end to end: collect → score → data/scored-runs/<stream>.jsonl."""
    streams: dict[str, list[dict[str, Any]]] = {}
    expected: dict[str, str] = {}
    for index, (stream, overrides, category) in enumerate(RULES):
        if stream == "distilled_facts":
            continue
        id_field = BUILTIN_SOURCES[stream].spec.id_field
        # one task per row, so no cross-stream rule changes the expected category
        row = make_row(stream, **overrides, **{id_field: f"X-{index}", "task_id": f"T-{index}"})
        streams.setdefault(stream, []).append(row)
        expected[f"{stream}:X-{index}"] = category.value
    assert scored_categories(home, streams) == expected


# --- user-declared streams (distill.toml) -------------------------------------------------

LINT_TOML = """
[sources.lint_runs]
id_field = "lint_id"
time_field = "ran_at"
task_field = "ticket"
instruction_field = "command"
response_field = "output"
verdict_field = "status"
verdict_map = { Clean = "accepted", warn = "partially_accepted", ERROR = "rejected" }
"""


def test_declared_stream_is_collected_and_scored_without_code(home: Home) -> None:
    home.config_path.write_text(LINT_TOML)

    def lint(native: str, status: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "lint_id": native,
            "ran_at": T0,
            "ticket": "T-lint",
            "command": "ruff check src/",
            "output": "src/app.py:1:1 F401 unused import",
            "runner": "ci-7",
        }
        if status is not None:
            row["status"] = status
        return row

    rows = [
        lint("L-1", "clean"),
        lint("L-2", "CLEAN"),
        lint("L-3", "Warn"),
        lint("L-4", "error"),
        lint("L-5", "timeout"),
        lint("L-6", None),
    ]
    categories = scored_categories(home, {"lint_runs": rows})
    assert categories == {
        "lint_runs:L-1": "accepted",
        "lint_runs:L-2": "accepted",
        "lint_runs:L-3": "partially_accepted",
        "lint_runs:L-4": "rejected",
        "lint_runs:L-5": "needs_human_review",
        "lint_runs:L-6": "needs_human_review",
    }
    first = read_jsonl(home.scored_dir / "lint_runs.jsonl")[0]
    assert first["task_id"] == "T-lint"
    assert first["instruction"] == "ruff check src/"
    assert first["response"] == "src/app.py:1:1 F401 unused import"
    assert first["metadata"] == {"runner": "ci-7"}
    assert first["file_paths"] == ["src/app.py"]


def test_declared_streams_join_the_facts_rule(home: Home) -> None:
    home.config_path.write_text(LINT_TOML)
    lint_row = {
        "lint_id": "L-1",
        "ran_at": T0,
        "ticket": "T-9",
        "command": "ruff",
        "output": "1 error",
        "status": "error",
    }
    categories = scored_categories(
        home, {"lint_runs": [lint_row], "distilled_facts": [_fact("F-9", "T-9")]}
    )
    assert categories["distilled_facts:F-9"] == "rejected"


@pytest.mark.parametrize("builtin", sorted(BUILTIN_SOURCES))
def test_config_cannot_redefine_a_builtin_stream(home: Home, builtin: str) -> None:
    home.config_path.write_text(
        f'[sources.{builtin}]\nid_field = "id"\ntime_field = "t"\n'
        'instruction_field = "q"\nresponse_field = "a"\n'
    )
    with pytest.raises(ConfigError, match=f"sources.{builtin}"):
        load_config(home.config_path)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('time_field = "t"\ninstruction_field = "q"\nresponse_field = "a"', "id_field"),
        ('id_field = "id"\ninstruction_field = "q"\nresponse_field = "a"', "time_field"),
        ('id_field = "id"\ntime_field = "t"\ninstruction_field = "q"', "response_fields"),
        ('id_field = "id"\ntime_field = "t"\nresponse_field = "a"', "instruction_field"),
        (
            'id_field = "id"\ntime_field = "t"\ninstruction_field = "q"\nresponse_field = "a"\n'
            'verdict_field = "v"\nverdict_map = { ok = "approved" }',
            "verdict_map",
        ),
        (
            'id_field = "id"\ntime_field = "t"\ninstruction_field = "q"\nresponse_field = "a"\n'
            'verdict_feild = "v"',
            "verdict_feild",
        ),
        (
            'id_field = 3\ntime_field = "t"\ninstruction_field = "q"\nresponse_field = "a"',
            "id_field",
        ),
    ],
)
def test_malformed_declared_stream_names_the_field(home: Home, table: str, field: str) -> None:
    home.config_path.write_text(f"[sources.my_stream]\n{table}\n")
    with pytest.raises(ConfigError, match=field) as info:
        load_config(home.config_path)
    assert "sources.my_stream" in str(info.value)


def test_declared_stream_name_must_be_a_plain_identifier(home: Home) -> None:
    home.config_path.write_text(
        '[sources.My-Stream]\nid_field = "id"\ntime_field = "t"\n'
        'instruction_field = "q"\nresponse_field = "a"\n'
    )
    with pytest.raises(ConfigError, match="name"):
        load_config(home.config_path)


@pytest.mark.parametrize("toml", ["[sources]\nmy_stream = 3\n", "sources = 3\n"])
def test_non_table_source_declaration_is_a_config_error(home: Home, toml: str) -> None:
    home.config_path.write_text(toml)
    with pytest.raises(ConfigError, match="sources"):
        load_config(home.config_path)
