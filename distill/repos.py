"""`--repo-root`: one checkout, or a folder holding one checkout per repository.

The hallucinated-path check asks, for every path a record cites, whether it exists in the
checkout the record was written against:

- a root that holds ``.git`` (a folder, or the file a worktree has) is one checkout: every
  record is checked against it;
- otherwise the root is a folder of checkouts. A record naming its repository in
  ``metadata[<repo field>]`` (else ``signals[<repo field>]``), as ``owner/name``, ``name`` or a
  URL ending in them, is checked in the first of ``<root>/<owner>__<name>``,
  ``<root>/<owner>/<name>``, ``<root>/<name>`` that exists (one holding ``.git`` is preferred,
  so a ``django`` package folder is never taken for the ``django/django`` checkout). A record
  naming no repository is checked against the root itself. A record whose repository has no
  checkout there is not checked: it is counted in :attr:`RepoRoots.no_checkout`, never
  quarantined as hallucinated.

Cited paths are compared normalised (``./hello.sh`` is ``hello.sh``); one that leaves its
checkout (``../x.py``, a symlink pointing out) does not exist there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from distill.text import normalise_path

DEFAULT_REPO_FIELD = "repo"
CHECKOUT_LAYOUTS = ("{owner}__{name}", "{owner}/{name}", "{name}")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class Citing(Protocol):
    """What the check reads from a record (an evidence row or a scored run)."""

    @property
    def stream(self) -> str: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    @property
    def signals(self) -> dict[str, Any]: ...


def repo_key(value: object) -> tuple[str, ...] | None:
    """``("owner", "name")`` or ``("name",)`` from a repo field's value; None if it names none.

    >>> repo_key("django/django"), repo_key("https://github.com/psf/requests.git")
    (('django', 'django'), ('psf', 'requests'))
    """
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip("/").removesuffix(".git")
    parts = tuple(part for part in text.split("/") if part)[-2:]
    if not parts or not all(_SEGMENT.fullmatch(part) for part in parts):
        return None  # "..", "https:" (a bare host), anything with a space or a backslash
    return parts


def inside(root: Path, path: str) -> bool:
    """Does ``path`` (relative) exist under ``root`` (resolved) without leaving it?"""
    try:
        target = (root / normalise_path(path)).resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before 3.13)
        return False
    return (target == root or root in target.parents) and target.exists()


class RepoRoots:
    """Which cited paths are missing from the checkout a record belongs to (see the module doc).

    ``repo_fields`` maps a stream to the field naming its rows' repository (the per-source
    ``repo_field``); other streams use ``default_field``.
    """

    def __init__(
        self,
        root: Path,
        repo_fields: Mapping[str, str] | None = None,
        default_field: str = DEFAULT_REPO_FIELD,
    ) -> None:
        self.root = root.resolve()
        self.single = (self.root / ".git").exists()
        self._fields = dict(repo_fields or {})
        self._default = default_field
        self._checkouts: dict[tuple[str, ...], Path | None] = {}
        self._seen: dict[tuple[Path, str], bool] = {}
        self.no_checkout: Counter[str] = Counter()  # repository → records not checked

    def missing(self, paths: Sequence[str], record: Citing) -> list[str] | None:
        """The cited paths (normalised, in order) missing from ``record``'s checkout.

        None: the record's repository has no checkout here, so nothing was checked.
        """
        checkout = self.checkout(record)
        return None if checkout is None else self.missing_in(checkout, paths)

    def missing_in(self, checkout: Path, paths: Sequence[str]) -> list[str]:
        """The cited paths (normalised, in order) that do not exist in ``checkout``."""
        wanted = dict.fromkeys(normalise_path(path) for path in paths)
        return [path for path in wanted if not self._exists(checkout, path)]

    def checkout(self, record: Citing) -> Path | None:
        """The folder ``record``'s paths are checked in; None (and counted) when there is none."""
        checkout, unchecked = self.locate(record)
        if unchecked is not None:
            self.no_checkout[unchecked] += 1
        return checkout

    def locate(self, record: Citing) -> tuple[Path | None, str | None]:
        """:meth:`checkout` without the count: the folder, or None and the repository that has
        no checkout here (as :attr:`no_checkout` names it)."""
        if self.single:
            return self.root, None
        name = self._fields.get(record.stream, self._default)
        value = record.metadata.get(name)
        if value is None:
            value = record.signals.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return self.root, None
        key = repo_key(value)
        checkout = self._find(key) if key is not None else None
        if checkout is None:
            return None, "/".join(key) if key else repr(value)[:80]
        return checkout, None

    def describe(self, checkout: Path) -> str:
        """How a message names a checkout: the root, or its folder under the root."""
        if checkout == self.root:
            return "repo root"
        return f"checkout {checkout.relative_to(self.root).as_posix()}"

    def _find(self, key: tuple[str, ...]) -> Path | None:
        if key not in self._checkouts:
            owner, name = key if len(key) == 2 else ("", key[0])
            layouts = CHECKOUT_LAYOUTS if owner else ("{name}",)
            candidates = [self.root / layout.format(owner=owner, name=name) for layout in layouts]
            found = [folder for folder in candidates if folder.is_dir()]
            marked = [folder for folder in found if (folder / ".git").exists()]
            chosen = marked or found
            self._checkouts[key] = chosen[0] if chosen else None
        return self._checkouts[key]

    def _exists(self, checkout: Path, path: str) -> bool:
        if (checkout, path) not in self._seen:
            self._seen[(checkout, path)] = inside(checkout.resolve(), path)
        return self._seen[(checkout, path)]
