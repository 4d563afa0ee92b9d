"""The index stage: build or update the table from the RAG export, as run-all runs it."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from distill.home import Home
from distill.index.embedders import Embedder, Progress
from distill.index.objectstore import index_files
from distill.index.rows import read_playbooks, source_digest
from distill.index.store import DEFAULT_ANN_THRESHOLD, IndexReport, PlaybookStore
from distill.jsonio import canonical_json
from distill.limits import LineLimits
from distill.schemas import RagSample
from distill.stage_report import StageReport


def index_export(
    home: Home,
    uri: str,
    embedder: Embedder,
    *,
    rebuild: bool = False,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> tuple[StageReport, IndexReport]:
    """Update the index from ``exports/rag/playbooks.jsonl`` (or rebuild it from scratch).

    An update embeds only new or changed rows; a missing index or another embedder means a
    full build. A dry run reports what the build or update would do: it embeds nothing and
    writes nothing (not even an empty database folder).
    """
    export = home.export_path("rag")
    samples = read_playbooks(export, LineLimits.of_home(home).export)
    store = None if dry_run and not index_files(uri).exists() else PlaybookStore(uri)
    manifest = store.manifest() if store is not None else None
    same_embedder = manifest is not None and manifest.embedder == embedder.identity()
    action = "update" if (manifest is not None and same_embedder and not rebuild) else "build"
    report = StageReport(
        "index",
        params={
            "uri": uri,
            "embedder": embedder.identity(),
            "action": action,
            "ann_threshold": ann_threshold,
        },
        dry_run=dry_run,
    )
    report.inputs = [export]
    report.records_in = len(samples)
    report.out_by_category.update(s.category.value for s in samples)
    if store is None or dry_run:
        result = planned_update(store, samples) if action == "update" else planned_build(samples)
        report.records_out = len(samples)
        report.checks["index_matches_export"] = "skipped (dry run)"
        report.extra.update(_result_fields(result))
        return report.close(), result
    run = store.update if action == "update" else store.build
    result = run(
        samples,
        embedder,
        source_sha256=source_digest(export),
        ann_threshold=ann_threshold,
        progress=progress,
    )
    ids = [row["id"] for row in store.rows(["id"])]
    report.records_out = len(ids)
    report.extra.update(_result_fields(result))
    report.content_hash = table_content_hash(store)
    mismatch = index_mismatch(ids, [s.id for s in samples])
    report.checks["index_matches_export"] = "failed" if mismatch else "passed"
    if mismatch:
        report.errors.append(mismatch)
    return report.close(), result


def _result_fields(result: IndexReport) -> dict[str, object]:
    return {
        "table_version": result.version,
        "embedded": result.embedded,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "ann_index": result.ann_index,
        **result.extra,
    }


def planned_build(samples: list[RagSample]) -> IndexReport:
    """What a build would do: embed and insert every row."""
    return IndexReport(rows=len(samples), embedded=len(samples), inserted=len(samples))


def planned_update(store: PlaybookStore | None, samples: list[RagSample]) -> IndexReport:
    """What an update would do, by the rule it follows (a row is embedded again when its
    sig_hash changed), read from the published table without embedding anything."""
    if store is None:
        return planned_build(samples)
    known = {row["id"]: row["sig_hash"] for row in store.rows(["id", "sig_hash"])}
    changed = [s for s in samples if known.get(s.id) != s.provenance.sig_hash]
    wanted = {s.id for s in samples}
    return IndexReport(
        rows=len(samples),
        embedded=len(changed),
        inserted=sum(1 for s in changed if s.id not in known),
        updated=sum(1 for s in changed if s.id in known),
        deleted=len(set(known) - wanted),
        unchanged=len(samples) - len(changed),
        version=store.require_manifest().version,
    )


def index_mismatch(indexed: list[str], exported: list[str]) -> str | None:
    """Why the index's ids are not the export's, one for one (None when they are)."""
    duplicates = sorted(i for i, n in Counter(indexed).items() if n > 1)
    if len(indexed) == len(exported) and not duplicates and set(indexed) == set(exported):
        return None
    missing = sorted(set(exported) - set(indexed))
    extra = sorted(set(indexed) - set(exported))
    return (
        f"index holds {len(indexed)} rows for {len(exported)} exported: "
        f"{len(duplicates)} id(s) twice {duplicates[:3]}, missing {missing[:3]}, extra {extra[:3]}"
    )


def table_content_hash(store: PlaybookStore) -> str:
    """sha256 over (id, sig_hash, vector) sorted by id: the table's content, not its history."""
    rows = store.open().to_arrow().select(["id", "sig_hash", "vector"]).to_pylist()
    digest = hashlib.sha256(canonical_json(store.require_manifest().embedder))
    for row in sorted(rows, key=lambda r: r["id"]):
        digest.update(f"{row['id']}\0{row['sig_hash']}\0".encode())
        digest.update(np.asarray(row["vector"], dtype=np.float32).tobytes())
    return digest.hexdigest()
