"""Invariants over the files a run left behind, shared by acceptance and audit-full."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from distill.config import load_config
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import iter_json_objects, iter_raw_lines, refuse_bad_lines
from distill.schemas import DriftReport, RunSummary, StageReceipt
from distill.stages.export_preference import MAX_PAIRS_PER_TASK

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Files distill wrote itself: a dataset row holds its source row's text several times (see
# distill.limits), so no row is refused for its length below 64 MiB.
OWN_LINE_LIMIT = 1 << 26


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str = ""

    def prefixed(self, label: str) -> CheckResult:
        return CheckResult(f"{label}: {self.name}", self.passed, self.detail)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def rows(path: Path) -> list[dict[str, Any]]:
    """Parsed lines of a JSONL file we wrote ([] when absent).

    A line that is not a JSON object is a DistillError naming the file and line.
    """
    return list(iter_rows(path))


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """``rows``, one at a time. A line over ``OWN_LINE_LIMIT`` is an error, never skipped."""
    if not path.is_file():
        return
    for _, row in iter_json_objects(path, OWN_LINE_LIMIT, on_bad=refuse_bad_lines(path)):
        yield row


def count_rows(paths: list[Path]) -> int:
    """Non-blank lines, without keeping them."""
    return sum(
        1
        for path in paths
        if path.is_file()
        for raw in iter_raw_lines(path)
        if raw.data is None or raw.data.strip()
    )


def file_checks(home: Home, run_folder: Path) -> Iterator[CheckResult]:
    yield receipts_valid(run_folder)
    yield _row_accounting(home)
    rag, sft = rows(home.export_path("rag")), rows(home.export_path("sft"))
    pref = rows(home.export_path("preference"))
    bad_sft = [r["id"] for r in sft if r.get("quality_score") != "accepted"]
    yield CheckResult(
        "SFT holds only accepted",
        not bad_sft,
        f"not accepted: {bad_sft[:5]}" if bad_sft else f"{len(sft)} rows accepted",
    )
    bad_rag = [r["id"] for r in rag if r.get("category") == "rejected"]
    yield CheckResult(
        "RAG holds no rejected",
        not bad_rag,
        f"rejected: {bad_rag[:5]}" if bad_rag else f"{len(rag)} rows, none rejected",
    )
    yield from preference_checks(pref)
    yield provenance_check(rag, sft, pref)


def receipts_valid(folder: Path) -> CheckResult:
    problems = []
    models: dict[str, type[BaseModel]] = {"summary.json": RunSummary, "drift.json": DriftReport}
    files = sorted(folder.glob("*.json"))
    for name in ("summary.json", "drift.json"):
        if not (folder / name).is_file():
            problems.append(f"{name} missing")
    for path in files:
        model = models.get(path.name, StageReceipt)
        try:
            model.model_validate_json(path.read_bytes())
        except ValidationError as err:
            problems.append(f"{path.name}: {err.error_count()} error(s)")
    stages = [p for p in files if p.name not in models]
    detail = "; ".join(problems) if problems else f"{len(stages)} receipts + summary + drift valid"
    return CheckResult(
        "receipts, summary and drift validate", not problems and bool(stages), detail
    )


def _row_accounting(home: Home) -> CheckResult:
    """Counted from the files alone: every source line is evidence or a skip, and so on."""
    counted = stage_accounting(home)
    problems = [problem for problem, _ in counted.values() if problem]
    detail = "; ".join(problems) or (f"{counted['collect'][1]}; every export balances")
    return CheckResult("row accounting balances at every stage", not problems, detail)


def stage_accounting(home: Home, *, sources: bool = True) -> dict[str, tuple[str | None, str]]:
    """Per stage, from the files alone: (the imbalance or None, what was counted).

    ``sources=False`` leaves out collect, which reads every source stream (audit-full balances
    collect against its receipt instead, and reads the streams once, in its dry run).
    """
    evidence = count_rows(sorted(home.evidence_dir.glob("*.jsonl")))
    scored = count_rows(sorted(home.scored_dir.glob("*.jsonl")))
    result: dict[str, tuple[str | None, str]] = {}
    if sources:
        config = load_config(home.config_path)
        source_lines = sum(
            1
            for name, path in home.stream_files().items()
            if name in config.sources
            for raw in iter_raw_lines(path, config.collect.max_line_bytes)
            if raw.data is None or raw.data.strip()
        )
        skips = count_rows([home.skips_path])
        counted = f"{source_lines} source lines = {evidence} evidence + {skips} skips"
        result["collect"] = (
            None
            if source_lines == evidence + skips
            else "collect: " + counted.replace(" = ", " != "),
            counted,
        )
    result["score"] = (
        None if evidence == scored else f"score: {evidence} evidence != {scored} scored",
        f"{evidence} evidence = {scored} scored",
    )
    for export in ("rag", "sft", "preference"):
        if export == "preference":
            used = {
                side[key]["source_run_id"]
                for side in iter_rows(home.export_path(export))
                for key in ("chosen_provenance", "rejected_provenance")
            }
            exported = len(used)
        else:
            exported = count_rows([home.export_path(export)])
        quarantined = sum(
            1 for q in iter_rows(home.quarantine_path(export)) if q.get("pair") is None
        )
        balance = f"{scored} scored = {exported} out + {quarantined} quarantined"
        result[f"export_{export}"] = (
            None
            if scored == exported + quarantined
            else f"{export}: " + balance.replace(" = ", " != ", 1),
            balance,
        )
    return result


def preference_checks(pref: Iterable[dict[str, Any]]) -> Iterator[CheckResult]:
    """One pass over the pairs, keeping only what is wrong (and a count per task)."""
    pairs = 0
    self_pairs: list[str] = []
    identical: list[str] = []
    cross: list[str] = []
    per_task: Counter[Any] = Counter()
    for p in pref:
        pairs += 1
        chosen, rejected = p["chosen_provenance"], p["rejected_provenance"]
        if (
            chosen["source_run_id"] == rejected["source_run_id"]
            or chosen["sig_hash"] == rejected["sig_hash"]
        ):
            self_pairs.append(p["id"])
        if p["chosen"][0]["content"].strip() == p["rejected"][0]["content"].strip():
            identical.append(p["id"])
        if not (chosen.get("task_id") == rejected.get("task_id") == p.get("task_id")):
            cross.append(p["id"])
        per_task[p.get("task_id")] += 1
    yield CheckResult("preference has at least one pair", bool(pairs), f"{pairs} pairs")
    yield CheckResult("preference has no self-pair", not self_pairs, ", ".join(self_pairs[:5]))
    yield CheckResult(
        "preference has no identical chosen/rejected", not identical, ", ".join(identical[:5])
    )
    yield CheckResult("preference has no cross-task pair", not cross, ", ".join(cross[:5]))
    over = [task for task, count in per_task.items() if count > MAX_PAIRS_PER_TASK]
    yield CheckResult(
        f"preference has at most {MAX_PAIRS_PER_TASK} pairs per task",
        not over,
        ", ".join(map(str, over)),
    )


def provenance_check(
    rag: Iterable[dict[str, Any]], sft: Iterable[dict[str, Any]], pref: Iterable[dict[str, Any]]
) -> CheckResult:
    """Every provenance block, streamed: a 64-hex sig_hash and a source_run_id."""
    sides = itertools.chain(
        (row["provenance"] for row in itertools.chain(rag, sft)),
        (p[key] for p in pref for key in ("chosen_provenance", "rejected_provenance")),
    )
    seen = 0
    bad: list[Any] = []
    for side in sides:
        seen += 1
        if not _SHA256.match(str(side.get("sig_hash", ""))) or not side.get("source_run_id"):
            bad.append(side.get("source_run_id"))
    return CheckResult(
        "every export row carries a sig_hash and a source_run_id",
        not bad,
        f"bad: {bad[:5]}" if bad else f"{seen} provenance blocks complete",
    )


def index_checks(home: Home, known_id: str) -> Iterator[CheckResult]:
    """The index mirrors the RAG export, and a known query finds its record first."""
    # imported when called: only what reads the index loads it, so other commands start faster
    from distill.index import PlaybookStore, Retriever

    synced = list(index_sync_checks(home, str(home.index_dir)))
    yield from synced
    if not synced[0].passed:
        return
    record = next((r for r in rows(home.export_path("rag")) if r["id"] == known_id), None)
    if record is None:
        yield CheckResult("a known query returns its record first", False, f"{known_id} absent")
        return
    store = PlaybookStore(str(home.index_dir))
    hits = Retriever(store).search(record["instruction"], mode="hybrid", top_k=3)
    first = hits[0].id if hits else None
    yield CheckResult(
        "a known query returns its record first",
        first == known_id,
        f"{record['instruction'][:50]!r} → {first}",
    )


def index_sync_checks(home: Home, uri: str) -> Iterator[CheckResult]:
    """The table's ids and sig_hashes are the RAG export's, and every row is indexed."""
    # imported when called: only what reads the index loads it, so other commands start faster
    from distill.index import PlaybookStore
    from distill.index.stage import index_mismatch

    export = {r["id"]: r["provenance"]["sig_hash"] for r in iter_rows(home.export_path("rag"))}
    if "://" not in uri and not Path(uri).is_dir():  # never let a check create the folder
        yield CheckResult(
            "index rows == RAG export rows", False, f"no index at {uri}: run `distill index build`"
        )
        return
    try:
        store = PlaybookStore(uri)
        table_rows = store.rows(["id", "sig_hash"])
        stats = store.stats()
    except DistillError as err:
        yield CheckResult("index rows == RAG export rows", False, str(err))
        return
    indexed = {r["id"]: r["sig_hash"] for r in table_rows}
    duplicated = index_mismatch([r["id"] for r in table_rows], list(export))
    if duplicated and len(table_rows) != len(indexed):  # an id twice: the id sets hide it
        yield CheckResult("index rows == RAG export rows", False, duplicated)
        return
    same = indexed == export
    changed = sorted(i for i in set(export) & set(indexed) if export[i] != indexed[i])
    yield CheckResult(
        "index rows == RAG export rows",
        same,
        f"{len(indexed)} rows, ids and sig_hashes match"
        if same
        else f"index {len(indexed)} vs export {len(export)}; "
        f"missing {sorted(set(export) - set(indexed))[:3]}, "
        f"extra {sorted(set(indexed) - set(export))[:3]}, sig_hash differs {changed[:3]}",
    )
    yield CheckResult(
        "index has no unindexed rows",
        stats["unindexed_rows"] == 0,
        f"{stats['unindexed_rows']} unindexed",
    )


def replay_checks(home: Home, task: str) -> Iterator[CheckResult]:
    """A dry-run replay builds a labelled bundle and logs one valid replay_run.v1 line."""
    # imported when called: replay brings httpx and the model clients (~0.15 s), needed here only
    from distill.index import PlaybookStore, Retriever
    from distill.replay import ReplayOptions, replay
    from distill.replay.run import REPLAY_STREAM
    from distill.schemas import ReplayRun

    log = home.kb_dir / REPLAY_STREAM
    before = len(rows(log))

    def no_model() -> Any:
        raise AssertionError("a dry run must not load a model")

    try:
        run = replay(
            home,
            task,
            # the mechanics of a bundle, not relevance: the seeded hashing embedder's cosines
            # are not those the relevance threshold was calibrated on
            ReplayOptions(dry_run=True, log=True, min_relevance=0.0),  # a dry run logs on request
            retriever=lambda: Retriever(PlaybookStore(str(home.index_dir))),
            local=no_model,
        )
    except DistillError as err:
        yield CheckResult("a dry-run replay builds a bundle", False, str(err))
        return
    labelled = all(f"[{p.id}]" in run.bundle.messages[-1].content for p in run.bundle.exemplars)
    yield CheckResult(
        "a dry-run replay builds a bundle",
        bool(run.bundle.exemplars) and labelled,
        f"{len(run.bundle.exemplars)} exemplars, ids labelled: {labelled}",
    )
    logged = rows(log)[before:]
    valid = len(logged) == 1 and ReplayRun.model_validate(logged[0]).run_id == run.run_id
    yield CheckResult(
        "the replay is logged as one valid replay_run.v1 line", valid, f"{len(logged)} new line(s)"
    )
