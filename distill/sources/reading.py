"""A source's files → units, through its format's reader; its verdict files → an index."""

from __future__ import annotations

from collections.abc import Iterator

from distill.home import Home
from distill.sources.formats import FORMATS, ReadContext
from distill.sources.inputs import SourceInput
from distill.sources.units import Unit
from distill.sources.verdicts import VerdictIndex, load_verdicts


def iter_units(
    home: Home,
    source_input: SourceInput,
    *,
    max_line_bytes: int,
    max_unit_bytes: int,
    recorded_at: str,
) -> Iterator[Unit]:
    """Every unit of every file the source reads, files in sorted order."""
    spec = source_input.source.spec
    read = FORMATS[spec.format].read
    for path in source_input.files:
        context = ReadContext(
            spec, home.relative(path), max_line_bytes, max_unit_bytes, recorded_at
        )
        yield from read(path, context)


def source_verdicts(home: Home, source_input: SourceInput, max_bytes: int) -> VerdictIndex | None:
    """The source's verdicts side files read into one index (None without ``verdicts``)."""
    if not source_input.source.spec.verdicts:
        return None
    files = source_input.verdict_files
    names = [home.relative(path) for path in files]
    return load_verdicts(files, source_input.source.spec, names, max_bytes)
