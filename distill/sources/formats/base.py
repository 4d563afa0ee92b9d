"""What every format reader shares: its context, line units, folding lines, reading documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from distill.jsonio import RawLine, canonical_hash, file_sha256, iter_raw_lines, sha256_hex
from distill.schemas import SkipReason
from distill.sources.parse import RowSkip, parse_document, parse_row
from distill.sources.paths import matches
from distill.sources.spec import Source, SourceSpec
from distill.sources.units import LineSpan, Unit, physical_bytes

DEFAULT_MAX_UNIT_BYTES = 64 << 20
"""Largest folded group or document read whole (``[collect] max_unit_bytes``): real
trajectories run to a few MB; this leaves room without letting one file take the memory."""


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs besides the file: the source's settings and the limits."""

    spec: SourceSpec
    source_file: str
    max_line_bytes: int
    max_unit_bytes: int = DEFAULT_MAX_UNIT_BYTES
    recorded_at: str = ""


Reader = Callable[[Path, ReadContext], Iterator[Unit]]
RowBuilder = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Format:
    """A log format: how to read its files into units, its default field mapping, its rules."""

    name: str
    read: Reader
    source_class: type[Source]
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def is_blank(raw: RawLine) -> bool:
    return raw.data is not None and not raw.data.strip()


def line_row(raw: RawLine, ctx: ReadContext, limit: int) -> dict[str, Any] | Unit:
    """One line's JSON object, or the unit that skips it (too long, not JSON, filtered out)."""
    if raw.data is None:
        detail = f"{raw.size} bytes > limit {limit}"
        return Unit.skipped(ctx.source_file, raw, SkipReason.line_too_long, detail)
    try:
        row = parse_row(raw.data)
    except Exception as err:  # the last resort: nothing one line holds may stop a run
        return Unit.skipped(ctx.source_file, raw, SkipReason.unprocessable_row, _error(err))
    if isinstance(row, RowSkip):
        return Unit.skipped(ctx.source_file, raw, row.reason, row.detail)
    if ctx.spec.where and not matches(row, ctx.spec.where):
        return Unit.skipped(ctx.source_file, raw, SkipReason.filtered_out, "left out by `where`")
    return row


def read_lines(path: Path, ctx: ReadContext, build: RowBuilder | None = None) -> Iterator[Unit]:
    """One unit per non-blank line; ``build`` turns a line's object into the row (a format's).

    Lines are read without hashing them: a row's unit carries its bytes, hashed only if it is
    skipped later (:attr:`Unit.raw_sha256`); a line skipped here is hashed here.
    """
    for raw in iter_raw_lines(path, ctx.max_line_bytes, digest=False):
        if is_blank(raw):
            continue
        row = line_row(raw, ctx, ctx.max_line_bytes)
        if isinstance(row, Unit):
            yield row
            continue
        try:
            sig = canonical_hash(row)
            built = row if build is None else build(row)
        except Exception as err:  # the last resort: nothing one line holds may stop a run
            yield Unit.skipped(ctx.source_file, raw, SkipReason.unprocessable_row, _error(err))
            continue
        yield Unit(
            ctx.source_file,
            raw.line_no,
            "",
            raw.size,
            row=built,
            sig_hash=sig,
            raw=physical_bytes(raw),
        )


class Fold(Protocol):
    """Lines folded into one row, one line at a time."""

    def add(self, row: dict[str, Any]) -> None: ...

    def row(self) -> dict[str, Any]: ...


@dataclass
class _Group:
    fold: Fold | None
    span: LineSpan = field(default_factory=LineSpan)


KeyOf = Callable[[dict[str, Any]], str | None]


def fold_lines(
    path: Path, ctx: ReadContext, key_of: KeyOf, new_fold: Callable[[str], Fold], what: str
) -> Iterator[Unit]:
    """Fold the lines of ``path`` that share a key into one unit each, in order of first line.

    Lines that are no row, or have no key, are units of their own (skips), yielded as read;
    the groups follow at the end. A group over ``max_unit_bytes`` is one ``unit_too_large``.
    Lines may be as long as a whole unit.
    """
    groups: dict[str, _Group] = {}
    limit = ctx.max_unit_bytes
    for raw in iter_raw_lines(path, limit, digest=False):  # a group hashes its own lines
        if is_blank(raw):
            continue
        row = line_row(raw, ctx, limit)
        if isinstance(row, Unit):
            yield row
            continue
        key = key_of(row)
        if key is None:
            yield Unit.skipped(ctx.source_file, raw, SkipReason.missing_id, f"no {what}")
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(new_fold(key))
        group.span.add(raw)
        if group.span.size > limit:
            group.fold = None  # drop what it holds; the bytes are still hashed and counted
        elif group.fold is not None:
            try:
                group.fold.add(row)
            except Exception as err:  # never: a fold must not raise, but a run must not stop
                group.fold = None
                yield Unit.skipped(ctx.source_file, raw, SkipReason.unprocessable_row, _error(err))
    for group in groups.values():
        if group.fold is None:
            detail = f"{group.span.size} bytes > max_unit_bytes {limit}"
            yield group.span.unit(ctx.source_file, None, SkipReason.unit_too_large, detail)
        else:
            yield _folded_unit(ctx, group)


def _folded_unit(ctx: ReadContext, group: _Group) -> Unit:
    assert group.fold is not None
    try:
        return group.span.unit(ctx.source_file, group.fold.row())
    except Exception as err:  # the last resort, as for a line
        return group.span.unit(ctx.source_file, None, SkipReason.unprocessable_row, _error(err))


class MergedRows:
    """``group_by``'s fold: a shallow merge in file order; a later non-null value wins."""

    def __init__(self, key: str) -> None:
        self._row: dict[str, Any] = {}

    def add(self, row: dict[str, Any]) -> None:
        self._row.update((k, v) for k, v in row.items() if v is not None or k not in self._row)

    def row(self) -> dict[str, Any]:
        return self._row


DocumentBuilder = Callable[[dict[str, Any], Path, ReadContext], dict[str, Any]]


def read_document(path: Path, ctx: ReadContext, build: DocumentBuilder) -> Iterator[Unit]:
    """A whole JSON document as one unit: read once, parsed once, its bytes dropped at once.

    Too large → ``unit_too_large`` (hashed in chunks, never held); not JSON, not UTF-8, not an
    object → one skip naming the file; ``where`` reads the parsed document.
    """
    size = path.stat().st_size
    if size > ctx.max_unit_bytes:
        detail = f"{ctx.source_file}: {size} bytes > max_unit_bytes {ctx.max_unit_bytes}"
        yield _document_unit(
            ctx, file_sha256(path), size, 1, skip=SkipReason.unit_too_large, detail=detail
        )
        return
    data = path.read_bytes()
    sha, lines = sha256_hex(data), _line_count(data)
    parsed = parse_document(data)
    del data
    if isinstance(parsed, RowSkip):
        detail = f"{ctx.source_file}: {parsed.detail}"
        yield _document_unit(ctx, sha, size, lines, skip=parsed.reason, detail=detail)
        return
    if ctx.spec.where and not matches(parsed, ctx.spec.where):
        yield _document_unit(
            ctx, sha, size, lines, skip=SkipReason.filtered_out, detail="left out by `where`"
        )
        return
    try:
        row = build(parsed, path, ctx)
    except Exception as err:  # the last resort: nothing one document holds may stop a run
        yield _document_unit(
            ctx, sha, size, lines, skip=SkipReason.unprocessable_row, detail=_error(err)
        )
        return
    yield _document_unit(ctx, sha, size, lines, row=row)


def _document_unit(
    ctx: ReadContext,
    sha: str,
    size: int,
    lines: int,
    *,
    row: dict[str, Any] | None = None,
    skip: SkipReason | None = None,
    detail: str = "",
) -> Unit:
    return Unit(
        ctx.source_file,
        1,
        sha,
        size,
        line_end=max(lines, 1),
        pointer="",
        row=row,
        sig_hash=sha,
        skip=skip,
        detail=detail,
    )


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:200]


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a log field of the wrong type)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
