"""The LanceDB store: one table ``playbooks`` and a manifest that pins the published version.

Readers open the version the manifest names, so a build or update in progress (new rows written,
indexes not yet rebuilt) is never visible: the manifest is replaced atomically, last. The index
may live in a local folder or on S3 (``s3://bucket/prefix``): :mod:`distill.index.objectstore`
keeps the manifest beside the table in either, and on S3 also the lock that keeps a second
writer, on any machine, out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from distill.errors import DistillError, InputMissingError
from distill.index.embedders import Embedder, Progress
from distill.index.objectstore import (
    ANY,
    MANIFEST_FILE,
    Expected,
    connect,
    index_files,
    is_object_store,
)
from distill.index.relevance import TERMS_FILE, TermStats, decode_term_stats, encode_term_stats
from distill.index.rows import playbook_row, row_model
from distill.index.rows import read_playbooks as read_playbooks  # their home before rows.py
from distill.index.rows import source_digest as source_digest
from distill.schemas import RagSample

if TYPE_CHECKING:  # lancedb ships its types; imported lazily at run time (a heavy import)
    from lancedb.table import Table

os.environ.setdefault("LANCE_LOG", "error")  # lance's Rust warnings are noise on a CLI's stderr
TABLE = "playbooks"
DEFAULT_ANN_THRESHOLD = 10_000  # below it LanceDB brute force was 9.6x numpy at 99,999 rows
# Pinned explicitly: LanceDB's defaults have changed between releases.
FTS_SETTINGS: dict[str, Any] = {
    "base_tokenizer": "simple",
    "language": "English",
    "stem": True,
    "remove_stop_words": True,
    "lower_case": True,
    "ascii_folding": True,
    "max_token_length": 40,
    "with_position": False,
}


class IndexManifest(BaseModel):
    """What a reader needs to open the published table: version, embedder, settings."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["index_manifest.v1"] = Field(default="index_manifest.v1", alias="schema")
    table: str = TABLE
    version: int
    rows: int
    embedder: dict[str, Any]
    fts: dict[str, Any]
    ann_index: bool
    source_sha256: str | None


@dataclass(frozen=True)
class _Write:
    """How one build or update publishes: the export's digest, the ANN threshold, progress, and
    the manifest it expects to replace (see :meth:`PlaybookStore.writing`)."""

    source_sha256: str | None
    ann_threshold: int
    progress: Progress | None
    expected: Expected


@dataclass
class IndexReport:
    """What build/update did, for the CLI and the index stage receipt."""

    rows: int = 0
    embedded: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    version: int = 0
    ann_index: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_index_uri(uri: str | None, home_index: Path) -> str:
    """``uri`` (a folder or ``s3://bucket/prefix``; ``distill.settings`` resolves it), else
    the home's."""
    return uri or str(home_index)


class PlaybookStore:
    """One LanceDB database holding the ``playbooks`` table and its manifest."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.files = index_files(uri)
        self._db = connect(uri)

    @property
    def manifest_path(self) -> Path:
        """The manifest of a local index (on S3: the object ``<uri>/playbooks.manifest.json``)."""
        return Path(self.uri) / MANIFEST_FILE

    def term_stats(self, table: Table, version: int | None = None) -> TermStats:
        """The term statistics of ``table`` (at ``version``, else its own): the file written
        with that version, else counted from the table (an index built before the file)."""
        try:
            raw = self.files.read(TERMS_FILE)
        except OSError:  # unreadable: counted again, as when there is none
            raw = None
        saved = decode_term_stats(raw, version or table.version)
        return saved if saved is not None else TermStats.from_texts(_texts(table, None))

    def manifest(self) -> IndexManifest | None:
        raw = self.files.read(MANIFEST_FILE)
        return None if raw is None else IndexManifest.model_validate_json(raw)

    def manifest_sha256(self) -> str:
        """The sha256 of the published manifest's bytes (a release names it)."""
        raw = self.files.read(MANIFEST_FILE)
        if raw is None:
            raise InputMissingError(f"no index at {self.uri}", hint="run `distill index build`")
        return hashlib.sha256(raw).hexdigest()

    def manifest_stamp(self) -> str | None:
        """Changes whenever the manifest is replaced: a reader reopens the index when it does."""
        return self.files.stamp(MANIFEST_FILE)

    @contextlib.contextmanager
    def writing(self, command: str) -> Iterator[Expected]:
        """Hold the index's writer lock (on S3; a local index has the home's) for the block;
        yield the manifest a publish may replace: the one published now, on S3, so that a
        writer that lost the lock still cannot publish over another's version."""
        with self.files.writer_lock(command):
            yield self.files.stamp(MANIFEST_FILE) if is_object_store(self.uri) else ANY

    def require_manifest(self) -> IndexManifest:
        manifest = self.manifest()
        if manifest is None:
            raise InputMissingError(f"no index at {self.uri}", hint="run `distill index build`")
        return manifest

    def open(self, manifest: IndexManifest | None = None) -> Table:
        """The published table, pinned at the manifest's version (read-only)."""
        manifest = manifest or self.require_manifest()
        table = self._db.open_table(TABLE)
        table.checkout(manifest.version)
        return table

    def check_embedder(self, embedder: Embedder, manifest: IndexManifest) -> None:
        stored, given = manifest.embedder, embedder.identity()
        if stored != given:
            raise DistillError(
                f"the index was built with embedder {stored.get('name')} "
                f"(dim {stored.get('dim')}, seed {stored.get('seed')}); "
                f"this run uses {given.get('name')} (dim {given.get('dim')})",
                hint=f"use --embedder {stored.get('name')}, or rebuild: "
                f"distill index build --embedder {given.get('name')}",
            )

    def build(
        self,
        samples: list[RagSample],
        embedder: Embedder,
        *,
        source_sha256: str | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Embed every sample and publish a fresh table version with its indexes."""
        with self.writing("index build") as expected:
            write = _Write(source_sha256, ann_threshold, progress, expected)
            return self._build(samples, embedder, write)

    def _build(self, samples: list[RagSample], embedder: Embedder, write: _Write) -> IndexReport:
        import pyarrow as pa

        vectors = embedder.embed([s.text for s in samples], write.progress)
        model = row_model(embedder.dim)
        schema = model.to_arrow_schema()
        data = pa.Table.from_pylist(
            [playbook_row(s, v) for s, v in zip(samples, vectors, strict=True)], schema=schema
        )
        # "overwrite" on a folder with no table yet makes lance warn on stderr; "create" does not
        mode = "overwrite" if TABLE in self._db.list_tables().tables else "create"
        table = self._db.create_table(TABLE, data=data, schema=schema, mode=mode)
        ann = self._refresh_indexes(table, write.ann_threshold, rebuild=True)
        terms = TermStats.from_texts(s.text for s in samples)
        self._publish(table, embedder, write, ann, terms)
        return IndexReport(
            rows=len(samples),
            embedded=len(samples),
            inserted=len(samples),
            version=table.version,
            ann_index=ann,
        )

    def update(
        self,
        samples: list[RagSample],
        embedder: Embedder,
        *,
        source_sha256: str | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Embed only new or changed rows (by sig_hash), merge on id, delete rows gone."""
        with self.writing("index update") as expected:
            write = _Write(source_sha256, ann_threshold, progress, expected)
            return self._update(samples, embedder, write)

    def _update(self, samples: list[RagSample], embedder: Embedder, write: _Write) -> IndexReport:
        manifest = self.require_manifest()
        self.check_embedder(embedder, manifest)
        table = self._db.open_table(TABLE)
        current = table.to_arrow().select(["id", "sig_hash"]).to_pylist()
        known = {row["id"]: row["sig_hash"] for row in current}
        if len(known) != len(current):  # an id twice: merging cannot repair it, a build does
            report = self._build(samples, embedder, write)
            report.extra["repaired"] = f"{len(current) - len(known)} duplicate row(s): rebuilt"
            return report
        wanted = {s.id: s for s in samples}
        changed = [s for s in samples if known.get(s.id) != s.provenance.sig_hash]
        gone = sorted(set(known) - set(wanted))
        report = IndexReport(
            rows=len(samples),
            embedded=len(changed),
            inserted=sum(1 for s in changed if s.id not in known),
            updated=sum(1 for s in changed if s.id in known),
            deleted=len(gone),
            unchanged=len(samples) - len(changed),
        )
        terms = self.term_stats(table)
        terms.remove(_texts(table, [s.id for s in changed if s.id in known] + gone))
        terms.add(s.text for s in changed)
        if changed:
            vectors = embedder.embed([s.text for s in changed], write.progress)
            rows = [playbook_row(s, v) for s, v in zip(changed, vectors, strict=True)]
            (
                table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(rows)
            )
        for chunk in _chunks(gone, 500):
            table.delete("id IN (" + ", ".join(_sql_str(i) for i in chunk) + ")")
        ann = self._refresh_indexes(table, write.ann_threshold, rebuild=False)
        self._publish(table, embedder, write, ann, terms)
        report.version, report.ann_index = table.version, ann
        return report

    def _refresh_indexes(self, table: Table, ann_threshold: int, *, rebuild: bool) -> bool:
        """FTS always (once data exists); the ANN index only past ``ann_threshold`` rows."""
        from lancedb.index import FTS, HnswSq

        rows = table.count_rows()
        if rows == 0:
            return False
        names = {index.name for index in table.list_indices()}
        if rebuild or "text_idx" not in names:
            table.create_index("text", config=FTS(**FTS_SETTINGS), replace=True)
        ann = rows >= ann_threshold
        if ann and (rebuild or "vector_idx" not in names):
            table.create_index("vector", config=HnswSq(distance_type="cosine"), replace=True)
        if not rebuild:
            table.optimize()  # folds new rows into the FTS and vector indexes
        return ann or "vector_idx" in names

    def _publish(
        self,
        table: Table,
        embedder: Embedder,
        write: _Write,
        ann: bool,
        terms: TermStats,
    ) -> None:
        # the statistics first: a reader of the new manifest finds them; one of the old
        # manifest sees a version mismatch and counts its own
        self.files.write(TERMS_FILE, encode_term_stats(terms, table.version))
        manifest = IndexManifest(
            version=table.version,
            rows=table.count_rows(),
            embedder=embedder.identity(),
            fts=FTS_SETTINGS,
            ann_index=ann,
            source_sha256=write.source_sha256,
        )
        self.write_manifest(manifest, expected=write.expected)

    def write_manifest(self, manifest: IndexManifest, *, expected: Expected = ANY) -> None:
        """Publish ``manifest`` (atomically): readers open the version it names from now on.

        ``expected`` (from :meth:`writing`): on S3, publish only over that manifest.
        """
        body = orjson.dumps(
            manifest.model_dump(mode="json", by_alias=True),
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )
        self.files.write(MANIFEST_FILE, body, expected=expected)

    def latest_table(self) -> Table:
        """The table at its newest version, published or not: for writers and maintenance."""
        return self._db.open_table(TABLE)

    def stats(self) -> dict[str, Any]:
        manifest = self.require_manifest()
        table = self.open(manifest)
        unindexed = 0
        for index in table.list_indices():
            stats = table.index_stats(index.name)
            unindexed = max(unindexed, stats.num_unindexed_rows if stats else 0)
        return {
            "uri": self.uri,
            "table": TABLE,
            "version": manifest.version,
            "rows": table.count_rows(),
            "embedder": manifest.embedder,
            "indexes": sorted(index.name for index in table.list_indices()),
            "unindexed_rows": unindexed,
            "ann_index": manifest.ann_index,
            "size_bytes": self.files.size_bytes(),
            "fts": manifest.fts,
        }

    def rows(self, columns: list[str]) -> list[dict[str, Any]]:
        """Only ``columns`` of every row: a projected scan, never the vectors and texts too."""
        table = self.open()
        count = table.count_rows()
        if count == 0:
            return []
        return list(table.search().select(columns).limit(count).to_arrow().to_pylist())


def _texts(table: Table, ids: list[str] | None) -> Iterator[str]:
    """The ``text`` of the rows with ``ids`` (every row when None), a projected scan."""
    if ids is None:
        count = table.count_rows()
        rows = table.search().select(["text"]).limit(count).to_list() if count else []
        yield from (row["text"] for row in rows)
        return
    for chunk in _chunks(ids, 500):
        where = "id IN (" + ", ".join(_sql_str(i) for i in chunk) + ")"
        for row in table.search().where(where).select(["text"]).limit(len(chunk)).to_list():
            yield row["text"]


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
