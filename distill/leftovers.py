"""What an interrupted writer leaves behind, found and removed by the next one.

A write is a temp file renamed into place (:func:`distill.jsonio.atomic_writer`), and a run's
exports are published as a set with their previous versions kept aside until the set is
complete. A process killed mid-write leaves the temp file or the set-aside copies; nothing
reads them. The next writer holds the home's writer lock, so no other writer can be mid-write:
whatever it finds is stale and is removed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from distill.home import EXPORT_FILES, Home
from distill.jsonio import is_temp_file

PUBLISH_BACKUP_DIR = ".previous"  # under exports/: the set being replaced, while it is


def _output_folders(home: Home) -> Iterator[Path]:
    yield home.kb_dir
    yield home.evidence_dir
    yield home.scored_dir
    yield home.exports_dir
    yield home.quarantine_dir
    for relative in EXPORT_FILES.values():
        yield home.exports_dir / relative.parent
    yield home.index_dir
    yield home.root / ".distill"
    yield home.reports_dir
    if home.reports_dir.is_dir():
        yield from sorted(p for p in home.reports_dir.iterdir() if p.is_dir())


def temp_files(home: Home) -> list[Path]:
    """Temp files of unfinished atomic writes in the folders distill writes."""
    found: set[Path] = set()
    for folder in _output_folders(home):
        with contextlib.suppress(OSError):
            found.update(p for p in folder.glob(".*.tmp") if p.is_file() and is_temp_file(p))
    return sorted(found)


def publish_backup(home: Home) -> Path:
    return home.exports_dir / PUBLISH_BACKUP_DIR


def leftovers(home: Home) -> list[Path]:
    """Every leftover of an interrupted writer: temp files and a set-aside export set."""
    found = temp_files(home)
    backup = publish_backup(home)
    if backup.is_dir():
        found.append(backup)
    return found


def sweep(home: Home) -> list[Path]:
    """Remove the leftovers; call it only while holding the home's writer lock."""
    removed = []
    for path in leftovers(home):
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed
