"""The three exports and their quarantine files are published as one set: all or none.

Each export stage replaces its own files atomically. Around a run of several export stages,
:class:`ExportSet` keeps the previous files aside (hard links, so it costs no copy) and, when a
stage fails — an immutable file, a full disk, a firewall refusal — puts every file of the set
back as it was. A consumer never sees a new RAG export beside an old SFT export.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from distill.home import EXPORT_FILES, Home
from distill.leftovers import publish_backup


def export_set_paths(home: Home) -> list[Path]:
    """Every file the export stages write."""
    paths = [home.export_path(name) for name in EXPORT_FILES]
    return paths + [home.quarantine_path(name) for name in EXPORT_FILES]


class ExportSet:
    """Set the current export files aside; :meth:`restore` puts them all back."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.backup = publish_backup(home)
        self.failed = False
        self.kept = False
        self._kept: dict[Path, Path | None] = {}

    def keep(self) -> None:
        if self.backup.exists():
            shutil.rmtree(self.backup)
        for path in export_set_paths(self.home):
            if not path.is_file():
                self._kept[path] = None
                continue
            aside = self.backup / path.relative_to(self.home.exports_dir)
            aside.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, aside)
            except OSError:  # no hard links here (or an immutable file): copy instead
                shutil.copy2(path, aside)
            self._kept[path] = aside
        self.kept = True

    def restore(self) -> list[Path]:
        """Put back every file that changed; returns the paths restored."""
        restored = []
        for path, aside in self._kept.items():
            if aside is None:
                if path.exists():
                    path.unlink()
                    restored.append(path)
            elif not (path.is_file() and filecmp.cmp(path, aside, shallow=False)):
                os.replace(aside, path)
                restored.append(path)
        return restored

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.backup)


@contextlib.contextmanager
def exports_as_set(home: Home, *, dry_run: bool = False) -> Iterator[ExportSet]:
    """Run export stages inside; set ``.failed`` (or raise) and the old set comes back.

    A dry run writes nothing, so there is nothing to set aside.
    """
    exports = ExportSet(home)
    if dry_run:
        yield exports
        return
    exports.keep()
    try:
        yield exports
    except BaseException:
        with contextlib.suppress(OSError):  # the first failure is the one to report
            exports.restore()
            exports.discard()
        raise
    if exports.failed:
        exports.restore()
    exports.discard()
