"""The acceptance fixture's own expectations (expected.json): skips, quarantine, categories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from distill.home import Home
from distill.runs.checks import CheckResult, rows
from distill.runs.expected import (
    ExpectedPair,
    ExpectedQuarantine,
    ExpectedSkip,
    FixtureExpectations,
)


def dataset_checks(home: Home, expected: FixtureExpectations | None) -> Iterator[CheckResult]:
    """The fixture's own expectations (expected.json): skips, quarantine, categories."""
    if expected is None:
        yield CheckResult("fixture has expected.json", False, "nothing to compare against")
        return
    yield from _skip_checks(home, expected.skips)
    yield _expected_quarantine(home, expected.quarantine)
    scored = {r["id"]: r for path in sorted(home.scored_dir.glob("*.jsonl")) for r in rows(path)}
    exports = {name: {r["id"]: r for r in rows(home.export_path(name))} for name in ("rag", "sft")}
    for item in expected.materialized:
        source = exports[item.export] if item.export else scored
        problem = item.problem(source.get(item.record_id))
        yield CheckResult(
            f"{item.record_id} is materialized",
            problem is None,
            problem or item.why or "as expected",
        )
    pref = rows(home.export_path("preference"))
    if expected.preference_pairs is not None:
        yield _pair_check(pref, expected.preference_pairs)
    leaked = [
        (item.record_id, export)
        for item in expected.absent
        for export in item.exports
        if _in_export(home, export, item.record_id, pref)
    ]
    yield CheckResult(
        "refused records are in no export",
        not leaked,
        f"leaked: {leaked[:5]}" if leaked else "none leaked",
    )
    wrong = [
        (rid, str(cat), scored.get(rid, {}).get("category"))
        for rid, cat in expected.categories.items()
        if scored.get(rid, {}).get("category") != cat
    ]
    yield CheckResult(
        "every fixture row has its expected category",
        not wrong,
        f"{len(wrong)} wrong, e.g. {wrong[:3]}"
        if wrong
        else f"{len(expected.categories)} rows as expected",
    )


def _skip_checks(home: Home, expected: list[ExpectedSkip]) -> Iterator[CheckResult]:
    skips = {(s["stream"], s["line"], s["reason"]) for s in rows(home.skips_path)}
    want = [(s.stream, s.line, s.reason) for s in expected]
    provenance_reasons = {"missing_id", "missing_timestamp"}
    gaps = [w for w in want if w[2] in provenance_reasons]
    yield CheckResult(
        "missing-provenance rows are in the skips",
        bool(gaps) and all(w in skips for w in gaps),
        _missing_detail([w for w in gaps if w not in skips], len(gaps)),
    )
    garbage = [w for w in want if w[2] not in provenance_reasons]
    yield CheckResult(
        "each garbage line is in the skips with its reason",
        all(w in skips for w in garbage),
        _missing_detail([w for w in garbage if w not in skips], len(garbage)),
    )


def _pair_check(pref: list[dict[str, Any]], expected: list[ExpectedPair]) -> CheckResult:
    got = {
        (
            p["task_id"],
            p["chosen_provenance"]["source_run_id"],
            p["rejected_provenance"]["source_run_id"],
        )
        for p in pref
    }
    wanted = {(p.task_id, p.chosen, p.rejected) for p in expected}
    detail = (
        f"missing {sorted(wanted - got)[:3]}, unexpected {sorted(got - wanted)[:3]}"
        if got != wanted
        else f"{len(wanted)} pairs"
    )
    return CheckResult("preference pairs are exactly the expected ones", got == wanted, detail)


def _expected_quarantine(home: Home, expected: list[ExpectedQuarantine]) -> CheckResult:
    quarantine = {
        export: rows(home.quarantine_path(export)) for export in ("rag", "sft", "preference")
    }
    missing = []
    for item in expected:
        exports = list(quarantine) if item.export == "any" else [item.export]
        found = any(
            q["reason"] in item.reasons
            and (item.source_line is None or item.source_line == q.get("line"))
            and (
                item.record_id is None
                or item.record_id in (q.get("record_id"), (q.get("pair") or {}).get("rejected_id"))
            )
            for export in exports
            for q in quarantine[export]
        )
        if not found:
            missing.append((item.export, item.record_id, item.reason))
    return CheckResult(
        "quarantine holds the expected reasons",
        not missing,
        _missing_detail(missing, len(expected)),
    )


def _in_export(home: Home, export: str, record_id: str, pref: list[dict[str, Any]]) -> bool:
    if export == "preference":
        return any(
            p[side]["source_run_id"] == record_id
            for p in pref
            for side in ("chosen_provenance", "rejected_provenance")
        )
    return any(r["id"] == record_id for r in rows(home.export_path(export)))


def _missing_detail(missing: list[Any], total: int) -> str:
    return f"missing {missing[:5]}" if missing else f"{total} found"
