"""Verdict side files: verdicts that live outside the log, joined to its records by id.

``verdicts = "<glob>"`` in a ``[sources.<name>]`` table. Each file matched is read once, in
sorted order; a later file's verdict for an id replaces an earlier one. What a file may hold:

- JSONL rows with the id (``verdict_id_field``, default the source's ``id_field``) and a verdict
  (the first present of ``verdict_field``, ``resolved``, ``verdict``);
- a JSON object of id lists: ``resolved_ids`` → true; ``unresolved_ids``, ``empty_patch_ids``
  → false (SWE-bench's final report; its ``error_ids`` are the harness's failures, not a
  verdict);
- a flat per-instance report holding a verdict at the top (``{"resolved": true, …}``, as the
  SWE-bench harness writes ``logs/<id>/report.json``): the id is its own id field, else the
  name of the folder it is in;
- a JSON object keyed by id, each value an object holding a verdict (``{"<id>": {"resolved":
  true}}``) or the verdict itself (``{"<id>": "accepted"}``);
- a JSON array of rows, as JSONL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from distill.jsonio import iter_raw_lines
from distill.sources.parse import parse_row
from distill.sources.paths import get_path, scalar_text
from distill.sources.spec import SourceSpec

ID_LISTS = {"resolved_ids": True, "unresolved_ids": False, "empty_patch_ids": False}
VERDICT_KEYS = ("resolved", "verdict")


@dataclass
class VerdictIndex:
    """id → verdict, and what reading the files found."""

    verdicts: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    replaced: int = 0

    def put(self, record_id: str | None, verdict: Any) -> None:
        if record_id is None or verdict is None:
            return
        if record_id in self.verdicts and self.verdicts[record_id] != verdict:
            self.replaced += 1
        self.verdicts[record_id] = verdict


def load_verdicts(
    files: list[Path], spec: SourceSpec, names: list[str], max_bytes: int
) -> VerdictIndex:
    """Read every verdict file (``names``: their paths as provenance shows them)."""
    index = VerdictIndex(files=list(names))
    id_key = spec.verdict_id_field or spec.id_field
    keys = tuple(k for k in (spec.verdict_field, *VERDICT_KEYS) if k)
    for path, name in zip(files, names, strict=True):
        try:
            for record_id, verdict in _read(path, id_key, keys, max_bytes):
                index.put(record_id, verdict)
        except (OSError, ValueError) as err:
            index.warnings.append(f"verdicts file {name}: {err}; not read")
    if index.replaced:
        index.warnings.append(
            f"verdicts: {index.replaced} id(s) have different verdicts in two files; "
            "the later file (in sorted order) wins"
        )
    return index


def _read(
    path: Path, id_key: str, keys: tuple[str, ...], max_bytes: int
) -> Iterator[tuple[str | None, Any]]:
    if path.suffix == ".jsonl":
        for raw in iter_raw_lines(path, max_bytes):
            if raw.data is None or not raw.data.strip():
                continue
            row = parse_row(raw.data)
            if isinstance(row, dict):
                yield scalar_text(get_path(row, id_key)), _verdict(row, keys)
        return
    if path.stat().st_size > max_bytes:
        raise ValueError(f"larger than max_unit_bytes {max_bytes}")
    document = _document(path.read_bytes())
    yield from _from_document(document, path, id_key, keys)


def _document(data: bytes) -> Any:
    try:
        document = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err})") from err
    if not isinstance(document, dict | list):
        raise ValueError("neither an object nor an array")
    return document


def _from_document(
    document: Any, path: Path, id_key: str, keys: tuple[str, ...]
) -> Iterator[tuple[str | None, Any]]:
    if isinstance(document, list):
        for row in document:
            if isinstance(row, dict):
                yield scalar_text(get_path(row, id_key)), _verdict(row, keys)
        return
    lists = [key for key in ID_LISTS if isinstance(document.get(key), list)]
    if lists:
        for key in lists:
            for record_id in document[key]:
                yield scalar_text(record_id), ID_LISTS[key]
        return
    verdict = _verdict(document, keys)
    if verdict is not None:  # one instance's report: the id is inside, or the folder's name
        yield scalar_text(get_path(document, id_key)) or path.parent.name, verdict
        return
    for record_id, value in document.items():
        yield record_id, _verdict(value, keys) if isinstance(value, dict) else value


def _verdict(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = get_path(row, key)
        if value is not None:
            return value
    return None
