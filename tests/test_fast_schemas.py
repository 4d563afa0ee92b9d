"""The msgspec mirrors (distill.schemas.fast) never accept a row the pydantic schema refuses.

The hot path asks msgspec first and pydantic only about what msgspec refuses, so the two
validators accept and refuse exactly the same rows as long as msgspec's yes implies pydantic's
yes, with the same values. Hypothesis mutates valid rows of every record type, field by field,
with the values that tell strict from lax validation apart.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from distill.jsonio import validated_line
from distill.schemas import (
    EvidenceRecord,
    PreferenceSample,
    QuarantineRecord,
    RagSample,
    ScoredRun,
    SftSample,
    SkipRecord,
)
from distill.schemas.fast import FAST_TYPES, decode_scored, fast_accepts, read_scored

SHA = "0123456789abcdef" * 4
PROVENANCE = {
    "stream": "scrum_reviews",
    "source_file": "data/_kb/scrum_reviews.jsonl",
    "line": 3,
    "line_end": None,
    "pointer": None,
    "sig_hash": SHA,
    "source_run_id": "scrum_reviews:R-1",
    "recorded_at": "2026-01-01T00:00:00Z",
}
EVIDENCE = {
    "schema": "evidence.v1",
    "id": "scrum_reviews:R-1",
    "stream": "scrum_reviews",
    "native_id": "R-1",
    "task_id": "T-1",
    "created_at": "2025-03-01T10:00:00Z",
    "instruction": "Review src/app.py",
    "response": "Looks good.\n- Verify the tests pass",
    "file_paths": ["src/app.py"],
    "validation_steps": ["Verify the tests pass"],
    "signals": {"verdict": "accepted", "attempts": 2},
    "metadata": {"agent": "a-1", "nested": {"x": [1, 2.5, None]}},
    "provenance": PROVENANCE,
}
SCORED = {**EVIDENCE, "schema": "scored_run.v1", "category": "accepted", "rule": "verdict"}
USER = [{"role": "user", "content": "q"}]
ASSISTANT = [{"role": "assistant", "content": "a"}]
SIDE = {
    "source_run_id": "scrum_reviews:R-1",
    "task_id": "T-1",
    "sig_hash": SHA,
    "category": "accepted",
    "stream": "scrum_reviews",
    "source_file": "data/_kb/scrum_reviews.jsonl",
    "line": 3,
}
VALID: dict[type[BaseModel], dict[str, Any]] = {
    EvidenceRecord: EVIDENCE,
    ScoredRun: SCORED,
    RagSample: {
        "schema": "rag_sample.v1",
        "id": "scrum_reviews:R-1",
        "title": "Review",
        "text": "Review\n\nLooks good.",
        "instruction": "Review",
        "response": "Looks good.",
        "category": "accepted",
        "source": "scrum_reviews",
        "task_id": "T-1",
        "file_paths": [],
        "validation_steps": [],
        "provenance": PROVENANCE,
    },
    SftSample: {
        "schema": "sft_sample.v1",
        "id": "scrum_reviews:R-1",
        "prompt": USER,
        "completion": ASSISTANT,
        "quality_score": "accepted",
        "task_id": None,
        "provenance": PROVENANCE,
    },
    PreferenceSample: {
        "schema": "preference_sample.v1",
        "id": "pref:0123456789abcdef",
        "task_id": "T-1",
        "prompt": USER,
        "chosen": ASSISTANT,
        "rejected": [{"role": "assistant", "content": "b"}],
        "chosen_provenance": SIDE,
        "rejected_provenance": {**SIDE, "source_run_id": "x:2", "category": "rejected"},
        "recorded_at": "2026-01-01T00:00:00Z",
    },
    QuarantineRecord: {
        "schema": "quarantine.v1",
        "export": "sft",
        "reason": "duplicate_id",
        "detail": "seen earlier",
        "record_id": "scrum_reviews:R-1",
        "stream": "scrum_reviews",
        "line": 3,
        "sig_hash": SHA,
        "category": "rejected",
        "pair": None,
        "recorded_at": "2026-01-01T00:00:00Z",
    },
    SkipRecord: {
        "schema": "skip.v1",
        "stream": "audits",
        "source_file": "data/_kb/audits.jsonl",
        "line": 7,
        "line_end": None,
        "reason": "invalid_json",
        "detail": "not JSON",
        "raw_sha256": SHA,
        "raw_bytes": 12,
        "recorded_at": "2026-01-01T00:00:00Z",
    },
}

# Values that separate strict from lax validation, and each field's constraints.
TRICKY_VALUES: list[Any] = [
        None, "", " ", "x", "5", "1.5", 5, 0, -1, 1.5, 5.0, True, False, 2**70, [], {}, ["a"],
        [1], {"a": 1}, [{"role": "user", "content": "c"}], [{"role": "tool", "content": "c"}],
        [{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
        [{"role": "user", "content": "c", "extra": 1}], SHA, SHA + "\n", SHA.upper(), SHA[:-1],
        "accepted", "rejected", "needs_human_review", "partially_accepted", "ACCEPTED",
        "rag", "sft", "preference", "duplicate_id", "invalid_json", "evidence.v1",
        "scored_run.v1", {**PROVENANCE, "line": 0}, {**PROVENANCE, "line": "3"},
        {**PROVENANCE, "extra": 1}, {**PROVENANCE, "sig_hash": SHA + "\n"},
        {**PROVENANCE, "source_run_id": ""}, {"chosen_id": "a", "rejected_id": "b"},
        {**SIDE, "task_id": ""}, {**SIDE, "line": 1.0},
]  # fmt: skip
TRICKY = st.sampled_from(TRICKY_VALUES)


@st.composite
def mutated(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    payload = copy.deepcopy(VALID[model])
    keys = sorted(payload)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        action = draw(st.sampled_from(["set", "set", "set", "drop", "nested"]))
        if action == "drop":
            payload.pop(key)
        elif action == "nested" and isinstance(payload[key], dict) and payload[key]:
            inner = draw(st.sampled_from(sorted(payload[key])))
            payload[key] = {**payload[key], inner: draw(TRICKY)}
        else:
            payload[key] = draw(TRICKY)
    extra = draw(st.sampled_from([None, "unknown", "schema_"]))
    if extra == "schema_" and "schema" in payload:
        payload["schema_"] = payload.pop("schema")
    elif extra == "unknown":
        payload["unknown"] = 1
    return payload


def _pydantic_accepts(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return False
    return True


def test_every_mirror_has_the_models_fields_and_accepts_its_valid_row() -> None:
    for model, struct in FAST_TYPES.items():
        aliases = {info.alias or name for name, info in model.model_fields.items()}
        assert set(struct.__struct_encode_fields__) == aliases, model.__name__
    for model, payload in VALID.items():
        assert _pydantic_accepts(model, payload), model.__name__
        assert fast_accepts(model, payload), model.__name__  # else the fast path is dead


def _single_mutations(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field (and every field of a nested object) set to every tricky value, or dropped."""
    out = []
    for key, value in payload.items():
        out.append({k: v for k, v in payload.items() if k != key})
        out += [{**payload, key: tricky} for tricky in TRICKY_VALUES]
        if isinstance(value, dict):
            out += [{**payload, key: inner} for inner in _single_mutations(value)]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out += [{**payload, key: [inner]} for inner in _single_mutations(value[0])]
    return out


@pytest.mark.parametrize("model", list(VALID), ids=lambda model: model.__name__)
def test_msgspec_accepts_no_single_field_change_pydantic_refuses(model: type[BaseModel]) -> None:
    accepted = 0
    for payload in _single_mutations(VALID[model]):
        if fast_accepts(model, payload):
            accepted += 1
            assert _pydantic_accepts(model, payload), payload
    assert accepted  # some changes are harmless: the check above ran on accepted rows


@pytest.mark.parametrize("model", list(VALID), ids=lambda model: model.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_msgspec_accepts_only_what_pydantic_accepts(model: type[BaseModel], data: Any) -> None:
    payload = data.draw(mutated(model))
    if fast_accepts(model, payload):
        assert _pydantic_accepts(model, payload), payload
    # and the line written is pydantic's verdict, whichever validator answered; a value JSON
    # cannot carry (an integer past 64 bits, which pydantic accepts) is never written
    try:
        validated_line(model, payload)
        written = True
    except (ValidationError, ValueError, TypeError):
        written = False
    expected = _pydantic_accepts(model, payload) and payload.keys() == VALID[model].keys()
    assert written == (expected and _json_writable(payload))


def _json_writable(payload: dict[str, Any]) -> bool:
    try:
        orjson.dumps(payload)
    except TypeError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(payload=mutated(ScoredRun))
def test_a_scored_line_reads_the_same_through_msgspec_and_pydantic(payload: dict[str, Any]) -> None:
    try:
        data = orjson.dumps(payload)
    except TypeError:  # an int over 64 bits: no JSON line distill writes holds one
        return
    try:
        model: ScoredRun | None = ScoredRun.model_validate_json(data)
    except ValidationError:
        model = None
    row = decode_scored(data)
    if row is not None:
        assert model is not None, payload
        assert msgspec.to_builtins(row) == model.model_dump(mode="json", by_alias=True)
    try:
        read = read_scored(data)
    except ValidationError:
        assert model is None
    else:
        assert model is not None
        assert msgspec.to_builtins(read) == model.model_dump(mode="json", by_alias=True)
