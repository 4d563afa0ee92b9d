"""The pre-checks every export runs on a scored-run line, before its own policy.

They run in a fixed order and the first that fails names the reason: schema_violation →
missing_source_run_id → missing_provenance → duplicate_id → empty_content. A line that passes
is an :class:`AcceptedCandidate` (its record validated); one that fails, a
:class:`RefusedCandidate` with what could be read of it for the quarantine file.
"""

from __future__ import annotations

import hashlib
import zlib
from array import array
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import ValidationError

from distill.errors import format_validation_error
from distill.jsonio import RawLine, iter_raw_lines, read_lines_numbered
from distill.limits import LineLimits
from distill.schemas import Category, QuarantineReason, ScoredRun
from distill.schemas.fast import ScoredRow, decode_scored, scored_row

_SHA256 = frozenset("0123456789abcdef")


class AcceptedCandidate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A scored-run line that passed the pre-checks: a record the export's policy judges next.

    A frozen msgspec struct, not a frozen dataclass: one is made per line of every export, and
    a frozen dataclass sets each field through ``object.__setattr__`` (~20 times slower).
    """

    record: ScoredRow
    file_index: int
    offset: int

    @property
    def record_id(self) -> str:
        return self.record.id

    @property
    def stream(self) -> str:
        return self.record.stream

    @property
    def line(self) -> int:
        return self.record.provenance.line

    @property
    def sig_hash(self) -> str:
        return self.record.provenance.sig_hash

    @property
    def category(self) -> Category:
        return self.record.category


class RefusedCandidate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A scored-run line a pre-check refused, with what could be read of it for the quarantine
    (a frozen struct, as :class:`AcceptedCandidate`)."""

    reason: QuarantineReason
    detail: str
    record_id: str | None
    stream: str | None
    line: int  # the source line (provenance.line), or the scored-run line when unknown
    sig_hash: str | None
    category: Category | None
    file_index: int
    offset: int


Candidate = AcceptedCandidate | RefusedCandidate


def id_hash(text: str) -> int:
    """A 63-bit key for compact per-row bookkeeping (numpy arrays, not Python sets)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def id_key(text: str) -> int:
    """A 31-bit key (CRC-32 less its low bit, cheap) for finding repeated ids: equal ids have
    equal keys, and rows whose keys repeat are told apart by their ids themselves
    (:func:`repeated_keys`). 31 bits leave -1 free to mark a line without an id, so a line's
    key takes 4 bytes (``array("i")``, :data:`KEY_DTYPE`)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) >> 1


KEY_DTYPE = np.int32
"""A line's key in the scans: 4 bytes, 4 MB per million lines (the keys are sorted once)."""
NO_KEY = -1
"""The key of a line without an id: no :func:`id_key` is negative."""


def repeated_keys(keys: NDArray[np.int32]) -> NDArray[np.int32]:
    """The keys (>= 0; -1 marks a line without one) found more than once in ``keys``: one
    sorted copy of them, the lines without a key cut off its front (a view)."""
    ordered = np.sort(keys)
    ordered = ordered[np.searchsorted(ordered, ordered.dtype.type(0)) :]  # no int64 copy
    return np.unique(ordered[1:][ordered[1:] == ordered[:-1]])


LINES_AT_ONCE = 1 << 16
"""Lines :func:`lines_holding` compares at a time: ``np.isin`` sorts what it compares, which
for a million lines in one call peaks at 36 MiB (measured); a chunk's peak is a few MiB."""


def lines_holding(keys: NDArray[np.int32], wanted: NDArray[np.int32]) -> list[int]:
    """The line numbers (1-based, ascending) whose key, one per physical line, is ``wanted``."""
    lines: list[int] = []
    if not len(wanted):
        return lines
    for start in range(0, len(keys), LINES_AT_ONCE):
        chunk = keys[start : start + LINES_AT_ONCE]
        lines += (np.flatnonzero(np.isin(chunk, wanted)) + start + 1).tolist()
    return lines


def oversized(
    raw: RawLine, file_index: int, scored_file: str, limits: LineLimits
) -> RefusedCandidate:
    """The schema_violation of a line over the scored-run limit."""
    # Too long to read, so its provenance is out of reach: the scored-run line is named instead.
    detail = (
        f"line {raw.line_no} of {scored_file} is {raw.size} bytes, over {limits.describe('scored')}"
    )
    return RefusedCandidate(
        reason=QuarantineReason.schema_violation,
        detail=detail,
        record_id=None,
        stream=None,
        line=raw.line_no,
        sig_hash=None,
        category=None,
        file_index=file_index,
        offset=raw.offset,
    )


def duplicate_losers(files: list[Path], limits: LineLimits) -> frozenset[tuple[int, int]]:
    """(file index, line) of every valid record whose id appeared earlier (by time, then line).

    Memory stays small as streams grow: one pass keeps 4 bytes a line (a CRC-32 of its id,
    :func:`_id_keys`), and only the lines whose key repeats are read again, validated and
    ranked. The three exports read the same scored runs: the
    answer is kept for files whose identity (inode, size, times) is unchanged, so the second
    and third export do not read them twice more; and where score wrote them in this process
    (run-all), the one pass is not made either: score remembered each line's key as it wrote
    it (:func:`remember_id_keys`).
    """
    key = (limits.scored, *(_identity(path) for path in files))
    if _LOSERS_CACHE.get("key") != key:
        _LOSERS_CACHE.clear()
        _LOSERS_CACHE.update(key=key, losers=frozenset(_duplicate_losers(files, limits)))
    losers = _LOSERS_CACHE["losers"]
    assert isinstance(losers, frozenset)
    return losers


_LOSERS_CACHE: dict[str, object] = {}


def _identity(path: Path) -> tuple[str, int, int, int, int, int]:
    """A file as the cache knows it: rewritten (a new inode: atomic_writer) or edited in place
    (size, times), it is read again; the re-read wall checks ids in the output regardless."""
    info = path.stat()
    return str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def remember_id_keys(path: Path, keys: NDArray[np.int32], limit: int) -> None:
    """What the writer of ``path`` knows of it (score: per line, the :func:`id_key` of the id it
    wrote, or :data:`NO_KEY` for a line over ``limit``), kept so the duplicate scan of this
    process need not read the file again while its identity is unchanged."""
    _KEYS_CACHE[str(path)] = (_identity(path), limit, keys)


def forget_id_keys() -> None:
    """Drop what writers remembered (score does, before it writes a new set of scored runs): a
    process that runs many pipelines keeps the keys of one set of files at most."""
    _KEYS_CACHE.clear()


_KEYS_CACHE: dict[str, tuple[tuple[str, int, int, int, int, int], int, NDArray[np.int32]]] = {}


def _known_id_keys(path: Path, limit: int) -> NDArray[np.int32]:
    """:func:`_id_keys`, or what the file's writer remembered of the same file."""
    known = _KEYS_CACHE.get(str(path))
    if known is not None and known[0] == _identity(path) and known[1] == limit:
        return known[2]
    return _id_keys(path, limit)


def _duplicate_losers(files: list[Path], limits: LineLimits) -> set[tuple[int, int]]:
    keys = [_known_id_keys(path, limits.scored) for path in files]
    repeated = repeated_keys(np.concatenate(keys) if keys else np.empty(0, KEY_DTYPE))
    ranked: list[tuple[str, int, int, int]] = []
    for file_index, path in enumerate(files):
        for line, data in read_lines_numbered(path, lines_holding(keys[file_index], repeated)):
            checked = check_line(data, line, file_index, 0, set())
            if isinstance(checked, RefusedCandidate):
                continue  # an invalid copy never evicts a valid one
            record = checked.record
            moment = int(datetime.fromisoformat(record.created_at).timestamp() * 1_000_000)
            ranked.append((record.id, moment, file_index, line))
    ranked.sort()
    losers = set()
    for previous, current in zip(ranked, ranked[1:], strict=False):
        if previous[0] == current[0]:
            losers.add((current[2], current[3]))
    return losers


class _IdOnly(msgspec.Struct):
    """What the duplicate scan reads of a line: its id, the rest skipped over unbuilt."""

    id: object = None


_ID_DECODER = msgspec.json.Decoder(_IdOnly)


def _id_keys(path: Path, limit: int) -> NDArray[np.int32]:
    """Per physical line of ``path``, the :func:`id_key` of its id (a non-empty string), else -1.

    4 bytes a line, and the one pass over every line the scan needs: lines whose key repeats
    (true duplicates, plus the odd CRC collision, which validation and ranking by the id
    itself then tell apart) are the only ones read again. A line msgspec reads and pydantic
    would not is refused by :func:`check_line` then.
    """
    decode, error = _ID_DECODER.decode, (msgspec.DecodeError, msgspec.ValidationError)
    keys = array("i")
    append = keys.append
    for _, data, _, _, _ in iter_raw_lines(path, limit, digest=False):
        try:
            record_id = decode(data).id if data else None
        except error:
            record_id = None
        if isinstance(record_id, str) and record_id:
            append(id_key(record_id))
        else:
            append(NO_KEY)
    return np.frombuffer(keys, dtype=KEY_DTYPE) if keys else np.empty(0, KEY_DTYPE)


_Known = tuple[str | None, str | None, str | None, int]  # record_id, stream, sig_hash, line


def check_line(
    data: bytes,
    scored_line: int,
    file_index: int,
    offset: int,
    losers: frozenset[tuple[int, int]] | set[tuple[int, int]],
) -> Candidate:
    """One scored-run line through the pre-checks (``losers``: :func:`duplicate_losers`)."""
    # the schema checks sig_hash and line; emptiness is ours to refuse
    known: _Known
    record = _valid_record(data)
    if record is not None:  # the common case: one parse-and-validate
        origin = record.provenance
        known = (record.id, record.stream, origin.sig_hash, origin.line)
    else:  # classify the failure in the documented order
        lax = _classify_invalid(data, scored_line, file_index, offset)
        if isinstance(lax, RefusedCandidate):
            return lax
        record, known = lax
        origin = record.provenance
    reason = None
    if not (origin.stream and origin.source_file and origin.source_run_id):
        reason, detail = QuarantineReason.missing_provenance, "provenance incomplete"
    elif (file_index, scored_line) in losers:
        reason, detail = QuarantineReason.duplicate_id, f"{known[0]} seen earlier"
    elif _blank(record.response) or _blank(record.instruction):
        which = "response" if _blank(record.response) else "instruction"
        reason, detail = QuarantineReason.empty_content, f"empty {which}"
    if reason is None:
        return AcceptedCandidate(record=record, file_index=file_index, offset=offset)
    return RefusedCandidate(
        reason=reason,
        detail=detail,
        record_id=known[0],
        stream=known[1],
        sig_hash=known[2],
        line=known[3],
        category=None if reason is QuarantineReason.missing_provenance else record.category,
        file_index=file_index,
        offset=offset,
    )


def _blank(text: str) -> bool:
    """``not text.strip()`` without copying the text."""
    return not text or text.isspace()


def _classify_invalid(
    data: bytes, scored_line: int, file_index: int, offset: int
) -> tuple[ScoredRow, _Known] | RefusedCandidate:
    """Why a line msgspec refused fails, in the documented order; or, when pydantic (laxer)
    accepts it after all, its record and what the row itself says of it (a refusal after this
    point names those, as read from the row)."""
    record_id: str | None = None
    stream: str | None = None
    sig: str | None = None
    line = scored_line  # until the row says which source line it came from

    def refuse(reason: QuarantineReason, detail: str) -> RefusedCandidate:
        return RefusedCandidate(
            reason=reason,
            detail=detail,
            record_id=record_id,
            stream=stream,
            line=line,
            sig_hash=sig,
            category=None,
            file_index=file_index,
            offset=offset,
        )

    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        return refuse(QuarantineReason.schema_violation, f"not JSON: {err}"[:200])
    if not isinstance(row, dict):
        return refuse(QuarantineReason.schema_violation, "not a JSON object")
    record_id = _nonempty_str(row.get("id"))
    stream = _nonempty_str(row.get("stream"))
    provenance = row.get("provenance")
    if isinstance(provenance, dict):
        sig = _nonempty_str(provenance.get("sig_hash"))
        source_line = provenance.get("line")
        line = source_line if isinstance(source_line, int) and source_line > 0 else line
    if record_id is None:
        return refuse(QuarantineReason.missing_source_run_id, "record has no id")
    if not _provenance_complete(provenance):
        return refuse(QuarantineReason.missing_provenance, "provenance incomplete")
    try:
        return scored_row(ScoredRun.model_validate(row)), (record_id, stream, sig, line)
    except ValidationError as err:
        return refuse(QuarantineReason.schema_violation, format_validation_error(err)[:300])


def _valid_record(data: bytes) -> ScoredRow | None:
    """msgspec first (a strict subset of the schema, fast); pydantic for what it refuses."""
    record = decode_scored(data)
    if record is not None:
        return record
    try:
        return scored_row(ScoredRun.model_validate_json(data))
    except ValidationError:
        return None


def _nonempty_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _provenance_complete(provenance: object) -> bool:
    if not isinstance(provenance, dict):
        return False
    sig = provenance.get("sig_hash")
    if not (isinstance(sig, str) and len(sig) == 64 and set(sig) <= _SHA256):
        return False
    return all(provenance.get(key) for key in ("stream", "source_file", "line", "source_run_id"))
