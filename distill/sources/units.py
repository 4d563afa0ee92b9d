"""Units: what a format reader yields, one per record-to-be.

A unit is one JSONL line, a group of lines folded into one record (a Claude Code session, any
``group_by``), or a whole JSON document (a trajectory). It carries where it came from, down to
the byte, and either the row the source's field mapping reads or the reason it has none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from distill.jsonio import RawLine, sha256_hex
from distill.schemas import SkipReason

_BOM = b"\xef\xbb\xbf"


class Unit(NamedTuple):
    """One input unit (a named tuple: collect makes one per line, and a tuple is the cheapest
    immutable record to make).

    ``line`` is the first line (1 for a document), ``line_end`` the last line of a folded group
    or a document (None for a single line), ``pointer`` the RFC 6901 JSON pointer of a document
    unit (``""``: the whole document; None for lines). ``sha256`` and ``size`` are those of the
    unit's raw bytes. ``sig_hash`` is what provenance records: the canonical hash of a single
    line's row, the raw sha256 for folded and document units. A line that became a row carries
    its bytes in ``raw`` instead of a ``sha256`` (``""``): only a skip records the raw hash, and
    most rows are never skipped, so :attr:`raw_sha256` hashes them only when asked.
    """

    source_file: str
    line: int
    sha256: str
    size: int
    line_end: int | None = None
    pointer: str | None = None
    row: dict[str, Any] | None = None
    sig_hash: str = ""
    skip: SkipReason | None = None
    detail: str = ""
    raw: bytes | None = None

    @classmethod
    def skipped(cls, source_file: str, raw: RawLine, reason: SkipReason, detail: str) -> Unit:
        """A single line that is no row."""
        sha = raw_line_sha256(raw)
        return cls(source_file, raw.line_no, sha, raw.size, skip=reason, detail=detail)

    @property
    def raw_sha256(self) -> str:
        """The sha256 of the unit's raw bytes (what a skip records)."""
        return self.sha256 if self.raw is None else sha256_hex(self.raw)


def physical_bytes(raw: RawLine) -> bytes:
    """A line's bytes as the file holds them (less the line ending): ``data`` lacks the UTF-8
    byte order mark the first line may start with, and ``size`` counts it."""
    assert raw.data is not None
    return raw.data if len(raw.data) == raw.size else _BOM + raw.data


def raw_line_sha256(raw: RawLine) -> str:
    """The line's sha256, hashed here when the reader did not (``digest=False``: ``""``)."""
    return raw.sha256 or sha256_hex(physical_bytes(raw))


@dataclass
class LineSpan:
    """The raw bytes of a folded group, hashed as lines arrive: never held."""

    first: int = 0
    last: int = 0
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, raw: RawLine) -> None:
        """Count one line: its content (no line ending, no BOM) plus a ``\\n``."""
        data = raw.data or b""
        self.first = self.first or raw.line_no
        self.last = raw.line_no
        self.size += len(data) + 1
        self.digest.update(data)
        self.digest.update(b"\n")

    def unit(
        self,
        source_file: str,
        row: dict[str, Any] | None,
        skip: SkipReason | None = None,
        detail: str = "",
    ) -> Unit:
        sha = self.digest.hexdigest()
        return Unit(
            source_file,
            self.first,
            sha,
            self.size,
            line_end=self.last,
            row=row,
            sig_hash=sha,
            skip=skip,
            detail=detail,
        )
