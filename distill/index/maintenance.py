"""Index maintenance: the versions a LanceDB table keeps, and removing them.

Every build or update writes a few table versions (the data, then its indexes); readers open
the one the manifest publishes. A build killed mid-write leaves newer, unpublished versions and
data files that no version lists. ``distill index cleanup`` removes all of it.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from distill.index.relevance import TERMS_FILE, encode_term_stats
from distill.index.store import PlaybookStore


def old_versions(store: PlaybookStore) -> int:
    """Table versions kept besides the published one (what :func:`cleanup` removes)."""
    return max(len(store.latest_table().list_versions()) - 1, 0)


def cleanup(store: PlaybookStore, older_than: timedelta = timedelta(0)) -> dict[str, int]:
    """Remove every version but the published one, and files no version references.

    The published version is restored as the newest first, so it is the one kept; compaction
    then writes one more version of the same rows, which is published. Hold the home's writer
    lock: nothing else may write the table meanwhile (on S3 the index's own lock is taken too).
    """
    with store.writing("index cleanup") as expected:
        manifest = store.require_manifest()
        table = store.latest_table()
        before, versions = store.files.size_bytes(), len(table.list_versions())
        if table.version != manifest.version:
            table.restore(manifest.version)
        with warnings.catch_warnings():  # "removes every version but the latest": the point
            warnings.simplefilter("ignore", UserWarning)
            table.optimize(cleanup_older_than=older_than, delete_unverified=True)
        terms = store.term_stats(table, manifest.version)
        store.files.write(TERMS_FILE, encode_term_stats(terms, table.version))
        store.write_manifest(
            manifest.model_copy(update={"version": table.version}), expected=expected
        )
    return {
        "versions_removed": max(versions - len(table.list_versions()), 0),
        "bytes_removed": max(before - store.files.size_bytes(), 0),
        "version": int(table.version),
    }
