"""The nine built-in streams (docs/streams.md): verdict-map streams are data; four need code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from distill.injection import injection_phrases
from distill.schemas import Category, most_conservative
from distill.sources.spec import (
    Scorable,
    ScoringContext,
    Source,
    SourceSpec,
    Verdict,
    invalid_input,
    text_of,
)

A, P, R, H = (
    Category.accepted,
    Category.partially_accepted,
    Category.rejected,
    Category.needs_human_review,
)


class ScrumReviewSource(Source):
    """Verdict plus attempts; markers when there is no verdict; tree-split reviews are assembled."""

    def response(self, row: Mapping[str, Any]) -> str:
        shards = row.get("shards")
        if row.get("tree_split_fired") is True and isinstance(shards, list) and shards:
            ordered = sorted(
                (shard for shard in shards if isinstance(shard, dict)),
                key=lambda shard: _as_number(shard.get("index"), math.inf),
            )
            return "\n".join(text_of(shard.get("text")) for shard in ordered)
        return super().response(row)

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"attempts", "markers", "tree_split_fired", "shards"}

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        signals = super().signals(row)
        signals["attempts"] = row.get("attempts", 1)
        markers = row.get("markers")
        if markers is not None and markers != []:
            signals["markers"] = markers  # as written: the rule refuses anything but strings
        fired = row.get("tree_split_fired")
        if fired is not None and fired is not False:
            signals["tree_split_fired"] = fired
        return signals

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        signals = record.signals
        invalid = _scrum_input_problem(signals)
        if invalid is not None:
            return invalid
        verdict = text_of(signals.get("verdict")).strip().lower()
        attempts = signals.get("attempts")
        attempts = 1 if attempts is None else attempts
        if verdict == "accepted":
            if attempts <= 1:
                return Verdict(A, "verdict=accepted, attempts=1", True)
            return Verdict(P, f"verdict=accepted, attempts={attempts:g}", True)
        if verdict == "rejected":
            return Verdict(R, "verdict=rejected", True)
        if verdict:
            return Verdict(H, f"verdict={verdict} (unmapped)", True)
        marker_map = {"accept": A, "partial": P, "reject": R}
        markers = [
            marker_map[m.strip().lower()]
            for m in signals.get("markers", [])
            if m.strip().lower() in marker_map
        ]
        if markers:
            category = most_conservative(markers)
            return Verdict(category, f"no verdict, marker {category.value}", True)
        return Verdict(H, "no verdict, no marker", False)


def _scrum_input_problem(signals: Mapping[str, Any]) -> Verdict | None:
    verdict, attempts = signals.get("verdict"), signals.get("attempts")
    if verdict is not None and not isinstance(verdict, str):
        return invalid_input("verdict", verdict, "a string")
    if attempts is not None and not (_is_whole(attempts) and attempts >= 1):
        return invalid_input("attempts", attempts, "an integer >= 1")
    markers = signals.get("markers", [])
    if not (isinstance(markers, list) and all(isinstance(m, str) for m in markers)):
        return invalid_input("markers", markers, "an array of strings")
    fired = signals.get("tree_split_fired", False)
    if not isinstance(fired, bool):
        return invalid_input("tree_split_fired", fired, "a boolean")
    return None


class ModeExperimentSource(Source):
    """grounded_fraction ≥ 0.8 accepted, ≥ 0.5 partially accepted, else rejected."""

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"validation_results"}

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        results = row.get("validation_results")
        if isinstance(results, dict) and "grounded_fraction" in results:
            return {"grounded_fraction": results["grounded_fraction"]}
        if results is not None and not isinstance(results, dict):
            return {"validation_results": results}  # as written: the rule refuses it
        return {}

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        signals = record.signals
        if "validation_results" in signals:
            return invalid_input("validation_results", signals["validation_results"], "an object")
        fraction = signals.get("grounded_fraction")
        if fraction is None:
            return Verdict(H, "grounded_fraction missing", False)
        if not _is_number(fraction) or not 0 <= fraction <= 1:
            return invalid_input("grounded_fraction", fraction, "a number from 0 to 1")
        if fraction >= 0.8:
            return Verdict(A, f"grounded_fraction={fraction:g} >= 0.8", True)
        if fraction >= 0.5:
            return Verdict(P, f"grounded_fraction={fraction:g} >= 0.5", True)
        return Verdict(R, f"grounded_fraction={fraction:g} < 0.5", True)


class DistilledFactSource(Source):
    """A fact inherits the most conservative verdict its task earned in other streams."""

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        floor = context.task_floor.get(record.task_id or "")
        if floor is None:
            return Verdict(H, "no verdict-bearing rows for the task", False)
        return Verdict(floor, f"most conservative verdict of task {record.task_id}", False)


class ReplayRunSource(Source):
    """A passed replay is partially accepted: a model never grades itself into the SFT set.

    It becomes a playbook only when it is new and sound: never an eval run, an escalated or
    injection-shaped answer, a distill replay that did not pass the semantic checks, or a
    near-copy of the playbook it cites (a reuse of that playbook, not a new one).
    """

    LOOP_FIELDS = ("eval_run", "semantic_passed", "reuse_of")

    def consumed_fields(self) -> set[str]:
        return super().consumed_fields() | {"escalated", *self.LOOP_FIELDS}

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        signals = super().signals(row)
        escalated = row.get("escalated")
        signals["escalated"] = False if escalated is None else escalated  # the rule checks it
        if row.get("schema") == "replay_run.v1":  # distill's own line: its gate's verdicts
            signals["semantic_passed"] = row.get("semantic_passed")
        signals.update({k: row[k] for k in ("eval_run", "reuse_of") if row.get(k) is not None})
        answer = row.get("final_answer")
        found = injection_phrases(answer) if isinstance(answer, str) else []
        if found:
            signals["injection"] = found[0]
        return signals

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        raw_verdict, escalated = record.signals.get("verdict"), record.signals.get("escalated")
        if raw_verdict is not None and not isinstance(raw_verdict, str):
            return invalid_input("verdict", raw_verdict, "a string")
        if escalated is not None and not isinstance(escalated, bool):
            return invalid_input("escalated", escalated, "a boolean")
        verdict = (raw_verdict or "").strip().lower()
        if verdict == "failed":
            return Verdict(R, "gate failed", True)
        if verdict != "passed":
            return Verdict(H, f"verdict={verdict or 'missing'}", bool(verdict))
        if escalated:
            return Verdict(H, "gate passed after escalation", True)
        kept_out = _kept_out_of_rag(record.signals)
        if kept_out is not None:
            return kept_out
        if record.task_id and record.task_id in context.observer_accepted_tasks:
            return Verdict(A, "gate passed, observer accepted the task", True)
        return Verdict(P, "gate passed without escalation", True)


def _kept_out_of_rag(signals: Mapping[str, Any]) -> Verdict | None:
    """Why a passed replay must not become a playbook, or None."""
    eval_run, reuse_of = signals.get("eval_run", False), signals.get("reuse_of")
    if not isinstance(eval_run, bool):
        return invalid_input("eval_run", eval_run, "a boolean")
    if eval_run:
        return Verdict(H, "an eval run: a measurement, not evidence", True)
    if "injection" in signals:
        return Verdict(H, f"answer shaped like a prompt injection ({signals['injection']!r})", True)
    if "semantic_passed" in signals and signals["semantic_passed"] is not True:
        return Verdict(H, "gate passed without the semantic checks", True)
    if reuse_of is not None:
        if not isinstance(reuse_of, str):
            return invalid_input("reuse_of", reuse_of, "a string")
        return Verdict(H, f"reuse of {reuse_of}: a near-copy adds no new playbook", True)
    return None


def _is_number(value: Any) -> bool:
    """A JSON number: never a boolean or a numeric string; never NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _is_whole(value: Any) -> bool:
    """A JSON integer in JSON Schema's sense: ``2`` and ``2.0``, not ``2.5`` or ``"2"``."""
    return _is_number(value) and float(value).is_integer()


def _as_number(value: Any, default: float) -> float:
    """A shard's index for ordering only (a loose reading is harmless there)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value) if isinstance(value, str) else default
        except ValueError:
            return default
    return float(value)


def _spec(**fields: Any) -> SourceSpec:
    # The built-in streams' contract has ISO-8601 times only: a number there is invalid.
    return SourceSpec.model_validate({"epoch_times": False, **fields})


BUILTIN_SOURCES: dict[str, Source] = {
    source.name: source
    for source in [
        ScrumReviewSource(
            _spec(
                name="scrum_reviews",
                id_field="review_id",
                time_field="reviewed_at",
                instruction_field="prompt",
                instruction_template="Review {file}",
                response_fields=["review"],
                verdict_field="verdict",
            )
        ),
        Source(
            _spec(
                name="audits",
                id_field="audit_id",
                time_field="created_at",
                instruction_field="topic",
                response_fields=["finding", "evidence"],
                verdict_field="severity",
                verdict_map={"info": A, "low": A, "medium": P, "high": R, "critical": R},
            )
        ),
        Source(
            _spec(
                name="auto_apply",
                id_field="apply_id",
                time_field="applied_at",
                instruction_field="instruction",
                response_fields=["patch"],
                verdict_field="outcome",
                verdict_map={"committed": A, "build_red_reverted": R, "tests_failed": R},
            )
        ),
        Source(
            _spec(
                name="contract_analyses",
                id_field="analysis_id",
                time_field="created_at",
                instruction_field="question",
                instruction_template="Analyse {contract}",
                response_fields=["analysis"],
                verdict_field="verdict",
                verdict_map={"accept": A, "reject": R},
            )
        ),
        Source(
            _spec(
                name="observer_reviews",
                id_field="observation_id",
                time_field="created_at",
                instruction_field="prompt",
                response_fields=["response"],
                verdict_field="verdict",
                verdict_map={"accept": A, "reject": R},
            )
        ),
        DistilledFactSource(
            _spec(
                name="distilled_facts",
                id_field="fact_id",
                time_field="created_at",
                instruction_template="Fact for {task_id}",
                response_fields=["fact"],
            )
        ),
        Source(
            _spec(
                name="outcomes",
                id_field="outcome_id",
                time_field="created_at",
                instruction_template="Outcome of {task_id}",
                response_fields=["summary"],
                verdict_field="outcome",
                verdict_map={"success": A, "failure": R},
            )
        ),
        ModeExperimentSource(
            _spec(
                name="mode_experiments",
                id_field="experiment_id",
                time_field="created_at",
                instruction_field="prompt",
                response_fields=["output"],
            )
        ),
        ReplayRunSource(
            _spec(
                name="replay_runs",
                id_field="run_id",
                time_field="created_at",
                instruction_field="task",
                response_fields=["final_answer"],
                verdict_field="verdict",
            )
        ),
    ]
}

FACTS_STREAM = "distilled_facts"
OBSERVER_STREAM = "observer_reviews"
