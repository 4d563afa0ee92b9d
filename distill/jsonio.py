"""JSONL plumbing shared by every stage: canonical JSON, streaming reads, atomic writes.

Canonical JSON is the byte form every hash is taken over: sorted keys, no spaces, UTF-8.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from filelock import FileLock
from pydantic import BaseModel

from distill.errors import DistillError
from distill.schemas.fast import fast_accepts

DEFAULT_MAX_LINE_BYTES = 1 << 20
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
_CHUNK = 1 << 16
_READ_BUFFER = 1 << 16  # under malloc's mmap threshold
_WRITE_BUFFER = 1 << 17  # a system call per 128 KiB, not per 8 KiB: half the CPU for big rows


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8 (never ASCII-escaped)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def canonical_line(obj: Any) -> bytes:
    """:func:`canonical_json` and a newline, in one call: a JSONL line as every stage writes it."""
    return orjson.dumps(obj, option=_CANONICAL_LINE)


_CANONICAL_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: the ``sig_hash`` of a raw row."""
    return sha256_hex(canonical_json(obj))


@functools.cache
def _field_aliases(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(info.alias or name for name, info in model.model_fields.items())


def validated_line(model: type[BaseModel], payload: dict[str, Any]) -> bytes:
    """Validate ``payload`` as ``model`` and return it as one canonical JSONL line.

    The payload must spell out every field (no defaults filled in silently), so the bytes
    written are exactly what a reader validates. The model's msgspec mirror
    (:mod:`distill.schemas.fast`) answers first; pydantic decides whatever it refuses. The
    mirror refuses unknown fields and has the model's, so its yes for a payload with as many
    keys as the model has fields means every field is spelled out.
    """
    aliases = _field_aliases(model)
    if len(payload) != len(aliases) or not fast_accepts(model, payload):
        model.model_validate(payload)
        if payload.keys() != aliases:
            missing = sorted(aliases - payload.keys())
            raise ValueError(f"{model.__name__} payload is missing {missing}")
    return canonical_line(payload)


def model_line(model: BaseModel) -> bytes:
    """One canonical JSONL line for a record (``schema`` alias kept, newline included)."""
    return canonical_line(model.model_dump(mode="json", by_alias=True))


class RawLine(NamedTuple):
    """One physical line of a JSONL file. ``data`` is None when the line was over the limit.

    ``data`` is the line's content: no line ending and, on line 1, no UTF-8 byte order mark;
    ``sha256`` and ``size`` are those of the physical bytes (the mark included). A named tuple:
    every stage makes one per line, and a tuple is the cheapest immutable record to make.
    """

    line_no: int
    data: bytes | None
    sha256: str
    size: int
    offset: int


def iter_raw_lines(
    path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, digest: bool = True
) -> Iterator[RawLine]:
    """Stream the lines of ``path`` without ever holding more than one line in memory.

    Lines longer than ``max_line_bytes`` (not counting the ``\n`` or ``\r\n`` that ends them)
    are consumed in chunks, hashed and measured, never kept. Blank lines are yielded too, so
    callers can count them. A UTF-8 byte order mark at the start of the file is not content.
    ``digest=False``: a reader that never looks at ``sha256`` (files distill wrote) skips
    hashing the lines it keeps; their ``sha256`` is ``""``.

    Every stage reads every line through here, so the loop does as little Python per line as
    it can: one bounded ``readline``, one slice, and the tuple built without the named tuple's
    Python-level ``__new__``; and reads 64 KiB at a time (the default 8 KiB buffer costs a
    system call per two or three rows of a few KB: reading them took three times as long).
    """
    hexdigest = sha256_hex if digest else _no_digest
    room = max_line_bytes + 2  # the body plus "\r\n"
    new = tuple.__new__
    with open(path, "rb", buffering=_READ_BUFFER) as handle:
        readline = handle.readline
        line_no = 0
        offset = 0
        while chunk := readline(room):
            line_no += 1
            start = offset
            size = len(chunk)
            offset += size
            if chunk[-1] == 10:  # 10: "\n"
                body = chunk[: -2 if chunk[-2:-1] == b"\r" else -1]
                size = len(body)
            elif size < room:  # the file's last line, with no "\n"
                body = chunk
            else:
                digest_hex, size, offset = _rest_of_long_line(handle, chunk, offset)
                yield new(RawLine, (line_no, None, digest_hex, size, start))
                continue
            if size > max_line_bytes:
                yield new(RawLine, (line_no, None, sha256_hex(body), size, start))
            elif start == 0 and body.startswith(_BOM):
                yield new(RawLine, (line_no, body[len(_BOM) :], hexdigest(body), size, start))
            else:
                yield new(RawLine, (line_no, body, hexdigest(body), size, start))


def _rest_of_long_line(handle: IO[bytes], chunk: bytes, offset: int) -> tuple[str, int, int]:
    """Consume the rest of a line over the limit, ``chunk`` its start: (sha256, size without
    the line ending, the offset after it)."""
    hasher, size = hashlib.sha256(), 0
    pending = chunk  # held back one chunk, so only the line's own ending is dropped
    while True:
        following = handle.readline(_CHUNK)
        offset += len(following)
        if not following:
            pending = _without_eol(pending)
        elif pending.endswith(b"\r") and following == b"\n":
            pending, following = pending[:-1], b""
        hasher.update(pending)
        size += len(pending)
        if not following:
            break
        if following.endswith(b"\n"):
            tail = _without_eol(following)
            hasher.update(tail)
            size += len(tail)
            break
        pending = following
    return hasher.hexdigest(), size, offset


_BOM = b"\xef\xbb\xbf"


def _no_digest(_: bytes) -> str:
    return ""


_SKIM_BLOCK = 1 << 16  # under malloc's mmap threshold: a fresh block costs no page faults


def read_lines_numbered(path: Path, wanted: list[int]) -> Iterator[tuple[int, bytes]]:
    """(line number, content) of the lines ``wanted`` (ascending numbers of lines known to be
    within the limit: lines already read) of ``path``, as :func:`iter_raw_lines` reads them.

    The file is read in blocks: a block that holds none of them is only counted (its newlines,
    in C); in one that does, ``find`` steps from line to line and only wanted lines are copied.
    """
    pending = iter(wanted)
    target = next(pending, 0)
    line_no = 1  # the line the next block starts in (or goes on with)
    head: list[bytes] = []  # what the blocks before held of line `line_no`, when it is wanted
    with open(path, "rb", buffering=0) as handle:
        while target and (block := handle.read(_SKIM_BLOCK)):
            ends = block.count(b"\n")
            last = line_no + ends  # the line the block ends in
            if target > last:
                line_no = last
                continue
            find, pos, current = block.find, 0, line_no
            while target and target < last:
                while current < target:
                    pos, current = find(b"\n", pos) + 1, current + 1
                end = find(b"\n", pos)
                line = b"".join((*head, block[pos:end])) if head else block[pos:end]
                head = []
                yield target, _line_content(line, target, ended=True)
                pos, current, target = end + 1, current + 1, next(pending, 0)
            if target == last:  # starts in this block and ends in a later one
                while current < target:
                    pos, current = find(b"\n", pos) + 1, current + 1
                head.append(block[pos:])
            line_no = last
    if target and head:  # the file's last line, with no newline
        yield target, _line_content(b"".join(head), target, ended=False)


def _line_content(line: bytes, line_no: int, *, ended: bool) -> bytes:
    """A line without its ending (``\r\n`` or ``\n``) and, on line 1, its byte order mark."""
    if ended and line.endswith(b"\r"):
        line = line[:-1]
    return line[len(_BOM) :] if line_no == 1 and line.startswith(_BOM) else line


BadLine = Callable[[RawLine, str], None]


def iter_json_objects(
    path: Path,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    *,
    on_bad: BadLine | None = None,
    digest: bool = True,
) -> Iterator[tuple[RawLine, dict[str, Any]]]:
    """The JSON objects of a JSONL file, each with its raw line, in file order.

    Blank lines are passed over. A line that is over the limit, not JSON or not an object is
    handed to ``on_bad`` with the reason (``"not a JSON object"``), which may raise to stop
    the read (:func:`refuse_bad_lines`); without ``on_bad`` it is passed over, for lookups and
    first passes over files distill checks elsewhere. A stage that must account for every
    line reads :func:`iter_raw_lines` instead (``digest``: as there).
    """
    for raw in iter_raw_lines(path, max_line_bytes, digest=digest):
        if raw.data is not None and not raw.data.strip():
            continue
        row, problem = _json_object(raw, max_line_bytes)
        if row is not None:
            yield raw, row
        elif on_bad is not None:
            on_bad(raw, problem)


def refuse_bad_lines(path: Path, hint: str | None = None) -> BadLine:
    """An ``on_bad`` for files distill wrote or reads as a contract: a bad line is an error,
    ``<path>:<line> is <reason>``, never skipped."""

    def refuse(raw: RawLine, why: str) -> None:
        raise DistillError(f"{path}:{raw.line_no} is {why}", hint=hint)

    return refuse


def _json_object(raw: RawLine, limit: int) -> tuple[dict[str, Any] | None, str]:
    if raw.data is None:
        return None, f"{raw.size} bytes, over the limit of {limit}"
    try:
        row = orjson.loads(raw.data)
    except orjson.JSONDecodeError as err:
        return None, f"not JSON ({err})"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    return row, ""


def _without_eol(chunk: bytes) -> bytes:
    if chunk.endswith(b"\r\n"):
        return chunk[:-2]
    if chunk.endswith(b"\n"):
        return chunk[:-1]
    return chunk


@contextlib.contextmanager
def atomic_writer(path: Path, verify: Callable[[Path], None] | None = None) -> Iterator[IO[bytes]]:
    """Write ``path`` through a temp file in the same folder, fsync, then rename over it.

    A reader sees the old file or the new one, never a half-written one; on error the temp file
    is removed and the old file stays. ``verify(tmp_path)`` runs on the complete temp file before
    the rename: an exporter's re-read check raises there, so forbidden rows never land.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if verify is not None:
            verify(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    """An existing file keeps its mode; a new one gets 0666 less the umask, like open()."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the fallback)
    os.umask(mask)
    return mask


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temp file :func:`atomic_writer` makes (``.<name>.<random>.tmp``)."""
    return _TEMP_NAME.fullmatch(path.name) is not None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Pretty, sorted JSON for human-facing reports (receipts, summaries)."""
    write_bytes_atomic(path, orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def append_line_locked(path: Path, line: bytes) -> None:
    """Append one whole line under an inter-process lock (safe with many agents at once)."""
    if not line.endswith(b"\n"):
        line += b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), open(path, "ab") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(path: Path) -> int:
    """Number of non-blank lines (records) in a JSONL file."""
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count
