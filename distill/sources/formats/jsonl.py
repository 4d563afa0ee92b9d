"""``format = "jsonl"``: one JSON object per line (today's contract), optionally ``group_by``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from distill.sources.formats.base import MergedRows, ReadContext, fold_lines, read_lines
from distill.sources.paths import get_path, scalar_text
from distill.sources.units import Unit


def read_jsonl(path: Path, ctx: ReadContext) -> Iterator[Unit]:
    """A unit per line; with ``group_by``, a unit per group of lines sharing that field."""
    key = ctx.spec.group_by
    if key is None:
        yield from read_lines(path, ctx)
        return
    yield from fold_lines(
        path,
        ctx,
        lambda row: scalar_text(get_path(row, key)),
        MergedRows,
        f"{key!r} to group by",
    )
