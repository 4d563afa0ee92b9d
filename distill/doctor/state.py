"""Checks of a home: its layout and writability, the index, the writer lock, free disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.doctor.checks import DoctorCheck, failed, passed, warned
from distill.errors import DistillError
from distill.home import Home
from distill.lock import lock_path, read_owner

MIN_FREE_BYTES = 512 * 2**20
LOW_FREE_BYTES = 2 * 2**30


def check_home(home: Home) -> DoctorCheck:
    root = home.root
    if not root.is_dir():
        return failed("home", f"{root} does not exist", f"mkdir -p {root}, or pass --home DIR")
    if not os.access(root, os.W_OK | os.X_OK):
        return failed("home", f"{root} is not writable by this user", f"chown or chmod {root}")
    streams = home.stream_files() if home.kb_dir.is_dir() else {}
    if not streams:
        return warned(
            "home",
            f"{root} has no streams in data/_kb/ yet",
            "agents append JSONL to data/_kb/<stream>.jsonl; then distill run-all",
        )
    present = [name for name in ("evidence", "scored-runs") if (root / "data" / name).is_dir()]
    exports = home.exports_dir.is_dir()
    detail = f"{root}: {len(streams)} streams, {', '.join(present) or 'not collected yet'}"
    return passed("home", detail + (", exports" if exports else ""))


def check_index(uri: str, configured: dict[str, Any] | None) -> DoctorCheck:
    """The published index: reachable, its version and rows, built by the configured embedder."""
    from distill.index.store import PlaybookStore

    try:
        store = PlaybookStore(uri)
        manifest = store.manifest()
        if manifest is None:
            return warned("index", f"no index at {uri}", "distill index build")
        rows = store.open(manifest).count_rows()
        writer = store.files.lock_owner()  # an object store's own lock; None for a local index
    except Exception as err:  # a damaged table fails inside LanceDB with its own errors
        hint = err.hint if isinstance(err, DistillError) and err.hint else "distill index build"
        return failed("index", f"{uri} cannot be read: {type(err).__name__}: {err}", hint)
    built = manifest.embedder
    detail = f"{uri}: version {manifest.version}, {rows} rows, embedder {built.get('name')}"
    if writer is not None:
        return warned(
            "index",
            f"{detail}; being written by {writer.describe()}",
            "nothing to do if that run is expected; if it is gone: distill index unlock",
        )
    if (
        configured is not None
        and configured != built
        and not str(built.get("name")).startswith("hash-")
    ):
        return failed(
            "index",
            f"{detail}, but this machine's embedder is {configured.get('name')} "
            f"(model {str(configured.get('model_hash'))[:12]}): searches would be refused",
            f"distill index build --embedder {configured.get('name')}, or install the embedder "
            "the index was built with",
        )
    return passed("index", detail)


def check_lock(home: Home) -> DoctorCheck:
    path = lock_path(home)
    if not path.exists():
        return passed("writer lock", "never taken in this home")
    with _probe(path) as free:
        owner = read_owner(home)
    if free is None:
        return warned("writer lock", f"{path} cannot be opened", f"check the permissions of {path}")
    if free:
        last = f" (last: {owner.describe()})" if owner else ""
        return passed("writer lock", "free" + last)
    holder = owner.describe() if owner else "an unknown process"
    return warned(
        "writer lock",
        f"held by {holder}: writers wait for it",
        "nothing to do if that run is expected; it is released when its process exits",
    )


@contextlib.contextmanager
def _probe(path: Path) -> Iterator[bool | None]:
    """Whether the lock is free, by a shared non-blocking probe released at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        fcntl.flock(fd, fcntl.LOCK_UN)
        yield True
    finally:
        os.close(fd)


def check_disk(home: Home, free: int | None = None) -> DoctorCheck:
    folder = home.root if home.root.exists() else Path.cwd()
    free = shutil.disk_usage(folder).free if free is None else free
    detail = f"{free / 2**30:.1f} GiB free for {folder}"
    if free < MIN_FREE_BYTES:
        return failed("disk", detail, "free space: writes are atomic and need room for a copy")
    if free < LOW_FREE_BYTES:
        return warned("disk", detail, "free space before the next run-all or index build")
    return passed("disk", detail)
