"""One writer per home: every command that writes the home holds this lock while it does.

The lock is an OS file lock (``flock``) on ``<home>/.distill/writer.lock``: the kernel
releases it when its holder exits, however it exits, so a lock left by a killed process is
simply free again. The lock file itself is never removed (removing it would let two
processes lock two different files of the same name). Beside it, ``writer.json`` says who
holds it (pid, command, since when), so a second writer can say whom it waits for. Readers
(search, replay, serve) never take it: they read the published index version and whole files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from distill.clock import utc_now
from distill.errors import DistillError
from distill.home import Home
from distill.jsonio import write_bytes_atomic
from distill.leftovers import sweep

STATE_DIR = ".distill"
LOCK_FILE = "writer.lock"
OWNER_FILE = "writer.json"
_POLL_SECONDS = 0.2


class HomeBusy(DistillError):
    """Another process holds the home's writer lock."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or last held) the writer lock."""

    pid: int | None
    command: str
    since: str
    host: str

    def gone(self) -> bool:
        """The holder was a process on this machine that no longer runs (one on another
        machine cannot be checked from here: it is never called gone)."""
        here = self.host == socket.gethostname()
        return here and self.pid is not None and not _alive(self.pid)

    def describe(self) -> str:
        alive = ", no longer running" if self.gone() else ""
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where} (distill {self.command}, since {self.since}{alive})"


def lock_path(home: Home) -> Path:
    return home.root / STATE_DIR / LOCK_FILE


def read_owner(home: Home) -> LockOwner | None:
    """The holder's note; None when there is none or it is being rewritten."""
    try:
        raw = orjson.loads((home.root / STATE_DIR / OWNER_FILE).read_bytes())
        return LockOwner(
            pid=raw.get("pid"),
            command=str(raw.get("command", "?")),
            since=str(raw.get("since", "?")),
            host=str(raw.get("host", "?")),
        )
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None


@contextlib.contextmanager
def writer_lock(
    home: Home,
    command: str,
    *,
    wait: bool = True,
    timeout: float | None = None,
    on_wait: Callable[[LockOwner | None], None] | None = None,
    sweep_leftovers: bool = True,
) -> Iterator[list[Path]]:
    """Hold the home's writer lock for the block; yield the leftovers it removed.

    ``wait=False`` raises :class:`HomeBusy` at once when another process holds it; otherwise
    ``on_wait`` is told whom we wait for, and the lock is taken as soon as it is free (or
    :class:`HomeBusy` after ``timeout`` seconds). Holding the lock, it removes what an
    interrupted writer left (temp files, a half-published export set: see
    :mod:`distill.leftovers`) unless ``sweep_leftovers`` is False (audits report them).
    """
    path = lock_path(home)
    _state_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(fd):
            owner = read_owner(home)
            if not wait:
                raise _busy(home, owner)
            if on_wait is not None:
                on_wait(owner)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not _try_lock(fd):
                if deadline is not None and time.monotonic() > deadline:
                    raise _busy(home, read_owner(home), waited=timeout)
                time.sleep(_POLL_SECONDS)
        _write_owner(home, command)
        yield sweep(home) if sweep_leftovers else []
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _state_dir(folder: Path) -> None:
    """``.distill/`` ignores itself, so a home inside a git work tree stays clean."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        write_bytes_atomic(ignore, b"# distill's writer lock: local state, never committed\n*\n")


def _busy(home: Home, owner: LockOwner | None, waited: float | None = None) -> HomeBusy:
    who = owner.describe() if owner else "another process"
    after = f" after waiting {waited:g} s" if waited is not None else ""
    return HomeBusy(
        f"{home.root} is being written by {who}{after}; writer lock {lock_path(home)}",
        hint="wait for it to finish, or run again without --no-wait to queue behind it",
    )


def _write_owner(home: Home, command: str) -> None:
    note = {
        "pid": os.getpid(),
        "command": command,
        "since": utc_now(),
        "host": socket.gethostname(),
    }
    write_bytes_atomic(home.root / STATE_DIR / OWNER_FILE, orjson.dumps(note))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
