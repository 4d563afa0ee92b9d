"""The files distill keeps beside the LanceDB table, in a local folder or an S3 bucket.

LanceDB reads and writes the table itself at either kind of URI. Beside the table distill keeps
``playbooks.manifest.json`` (the published version), ``playbooks.terms.json`` (that version's
term statistics) and, on an object store, ``playbooks.lock.json`` (the writer lock):

- in a local folder they are written atomically by rename, and the home's writer lock
  (:mod:`distill.lock`) keeps a second writer out;
- on S3 a PUT replaces an object whole. The lock is created with a conditional PUT
  (``If-None-Match: *``: only one writer can create it, on any machine), and the manifest is
  replaced only while it is still the one the writer read when it began (``If-Match``), so
  a writer that lost the lock somehow still cannot publish over another's version.

Credentials never pass through distill: boto3 and LanceDB read the standard AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP``) themselves, or the machine's role.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson

from distill.clock import utc_now
from distill.errors import ConfigError, DistillError
from distill.jsonio import write_bytes_atomic
from distill.lock import LockOwner
from distill.secrets import scrub

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lancedb.db import DBConnection

MANIFEST_FILE = "playbooks.manifest.json"
LOCK_FILE = "playbooks.lock.json"
OBJECT_STORES = ("s3",)
S3_INSTALL = "pip install 'distill[s3]'"
T = TypeVar("T")


class Anything(Enum):
    """Replace whatever is there (a local file: the home's writer lock guards it)."""

    ANY = "any"


ANY = Anything.ANY
# What a writer expects to replace: the stamp it read, None for "nothing there yet", or ANY.
Expected = str | None | Anything


class IndexBusy(DistillError):
    """Another writer holds an object-store index's lock."""


class IndexConflict(DistillError):
    """Another writer published the index while this one was writing it."""


class IndexFiles(Protocol):
    """The manifest, the term statistics and the lock beside a LanceDB table."""

    uri: str

    def read(self, name: str) -> bytes | None: ...

    def stamp(self, name: str) -> str | None: ...

    def write(self, name: str, body: bytes, *, expected: Expected = ANY) -> None: ...

    def exists(self) -> bool: ...

    def size_bytes(self) -> int: ...

    def writer_lock(self, command: str) -> AbstractContextManager[None]: ...

    def lock_owner(self) -> LockOwner | None: ...

    def unlock(self) -> LockOwner | None: ...


def is_object_store(uri: str) -> bool:
    return "://" in uri


def index_files(uri: str) -> IndexFiles:
    """The files of the index at ``uri``: a local folder, or ``s3://bucket/prefix``."""
    if not is_object_store(uri):
        return LocalFiles(uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in OBJECT_STORES:
        raise ConfigError(
            f"{uri}: distill keeps the index's manifest beside its table in a local folder or "
            f"on S3, not on {scheme}://",
            hint="use a folder or s3://bucket/prefix (S3-compatible stores included: set "
            "AWS_ENDPOINT_URL)",
        )
    return S3Files(uri)


def connect(uri: str) -> DBConnection:
    """The LanceDB database at ``uri``; an object store's errors say what to check."""
    try:
        import lancedb
    except ImportError as err:  # pragma: no cover - depends on the install
        raise DistillError(
            "lancedb is not installed",
            hint="it is one of distill's own dependencies: pip install 'lancedb>=0.40,<0.41'",
        ) from err
    if not is_object_store(uri):
        return lancedb.connect(uri)
    try:
        return lancedb.connect(uri)
    except (ValueError, OSError, RuntimeError) as err:  # how lance reports an S3 failure
        text = scrub(str(err))
        answered = re.search(r"<Code>(\w+)</Code>", text)
        if answered:  # S3's own error, inside lance's retry report: say just that
            code = answered.group(1)
            bucket = uri.split("://", 1)[1].partition("/")[0]
            message = f"cannot open the index at {uri}: S3 answered {code}"
            raise DistillError(message, hint=_hint_for(code, bucket)) from err
        raise DistillError(
            f"cannot open the index at {uri}: {text}",
            hint="an http:// endpoint needs AWS_ALLOW_HTTP=true"
            if "BadScheme" in text
            else "check the URI, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION and the credentials",
        ) from err


class LocalFiles:
    """A local folder; the home's writer lock keeps a second writer out."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = Path(uri)

    def read(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def stamp(self, name: str) -> str | None:
        try:
            info = os.stat(self.root / name)
        except OSError:
            return None
        return f"{info.st_mtime_ns}:{info.st_size}"

    def write(self, name: str, body: bytes, *, expected: Expected = ANY) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.root / name, body)

    def exists(self) -> bool:
        return self.root.exists()

    def size_bytes(self) -> int:
        return folder_size(self.root)

    def writer_lock(self, command: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def lock_owner(self) -> LockOwner | None:
        return None  # the home's writer lock: distill.lock

    def unlock(self) -> LockOwner | None:
        return None


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class S3Files:
    """``s3://bucket/prefix`` through boto3 (any S3-compatible store: ``AWS_ENDPOINT_URL``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self.bucket, _, prefix = self.uri.split("://", 1)[1].partition("/")
        self.prefix = prefix.strip("/")
        if not self.bucket:
            raise ConfigError(f"{uri}: no bucket", hint="use s3://bucket/prefix")
        self._s3: Any = None

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def read(self, name: str) -> bytes | None:
        def get() -> bytes:
            return bytes(
                self._client().get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
            )

        return self._call(f"reading {name}", get, missing=None)

    def stamp(self, name: str) -> str | None:
        def head() -> str:
            return str(self._client().head_object(Bucket=self.bucket, Key=self.key(name))["ETag"])

        return self._call(f"reading {name}", head, missing=None)

    def write(self, name: str, body: bytes, *, expected: Expected = ANY) -> None:
        """PUT ``name``; with ``expected`` only while it is still that version (a stamp), or
        absent (None): else :class:`IndexConflict`."""
        condition: dict[str, str] = {}
        if expected is None:
            condition["IfNoneMatch"] = "*"
        elif isinstance(expected, str):
            condition["IfMatch"] = expected

        def put() -> bool:
            client = self._client()
            client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, **condition)
            return True

        if not self._call(f"writing {name}", put, missing=False):  # If-Match on a deleted object
            raise _conflict(self.uri, name)

    def exists(self) -> bool:
        return True  # opening a bucket creates nothing: a dry run may connect

    def size_bytes(self) -> int:
        def total() -> int:
            pages = self._client().get_paginator("list_objects_v2")
            prefix = f"{self.prefix}/" if self.prefix else ""
            found = pages.paginate(Bucket=self.bucket, Prefix=prefix)
            return sum(item["Size"] for page in found for item in page.get("Contents", []))

        return self._call("listing the index", total, missing=0)

    @contextlib.contextmanager
    def writer_lock(self, command: str) -> Iterator[None]:
        """Hold ``playbooks.lock.json`` for the block: created only when absent (any machine)."""
        note = orjson.dumps(
            {
                "pid": os.getpid(),
                "command": command,
                "since": utc_now(),
                "host": socket.gethostname(),
            }
        )
        try:
            self.write(LOCK_FILE, note, expected=None)
        except IndexConflict:
            self._take_over(note)
        try:
            yield
        finally:  # a failure here must not hide the block's own: the lock then stays, named
            with contextlib.suppress(DistillError):
                if self.read(LOCK_FILE) == note:
                    self._call("removing the lock", lambda: self._delete(LOCK_FILE), missing=None)

    def unlock(self) -> LockOwner | None:
        """Remove the lock a writer left (it was killed); who held it, or None."""
        owner = self.lock_owner()
        self._call("removing the lock", lambda: self._delete(LOCK_FILE), missing=None)
        return owner

    def _take_over(self, note: bytes) -> None:
        """The lock exists: take it only when it vanished meanwhile or its holder was a process
        on this machine that is gone; else :class:`IndexBusy`, naming the holder."""
        stamp, owner = self.stamp(LOCK_FILE), self.lock_owner()
        if stamp is None or (owner is not None and owner.gone()):
            try:
                self.write(LOCK_FILE, note, expected=stamp)
                return
            except IndexConflict:
                owner = self.lock_owner()
        who = owner.describe() if owner else "another writer"
        raise IndexBusy(
            f"the index at {self.uri} is being written by {who}; lock {self.uri}/{LOCK_FILE}",
            hint="one writer at a time: rerun when it has finished; if that run is gone, "
            f"`distill index unlock --index-dir {self.uri}` removes its lock",
        )

    def lock_owner(self) -> LockOwner | None:
        """Who holds the lock now (None: nobody)."""
        raw = self.read(LOCK_FILE)
        try:
            note = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return None
        if not isinstance(note, dict):
            return None
        pid = note.get("pid")
        return LockOwner(
            pid=pid if isinstance(pid, int) else None,
            command=str(note.get("command", "?")),
            since=str(note.get("since", "?")),
            host=str(note.get("host", "?")),
        )

    def _delete(self, name: str) -> None:
        self._client().delete_object(Bucket=self.bucket, Key=self.key(name))

    def _client(self) -> Any:
        if self._s3 is None:
            try:
                import boto3
            except ImportError as err:
                raise DistillError(
                    f"an index on S3 ({self.uri}) needs boto3", hint=S3_INSTALL
                ) from err
            self._s3 = boto3.client("s3")  # the standard AWS variables, or the machine's role
        return self._s3

    def _call(self, action: str, call: Callable[[], T], *, missing: T) -> T:
        """``call()``; ``missing`` when the object is not there, :class:`IndexConflict` when a
        condition failed, anything else a DistillError saying what to check."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return call()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return missing
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise _conflict(self.uri, action) from err
            raise DistillError(
                f"{self.uri}: {action} failed: {scrub(str(err))}", hint=_hint_for(code, self.bucket)
            ) from err
        except NoCredentialsError as err:
            raise DistillError(
                f"{self.uri}: {action} failed: no AWS credentials",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
                "for temporary ones), or run where a role provides them",
            ) from err
        except BotoCoreError as err:
            raise DistillError(
                f"{self.uri}: {action} failed: {scrub(str(err))}",
                hint="check AWS_ENDPOINT_URL (an S3-compatible store) and the network",
            ) from err


def _conflict(uri: str, what: str) -> IndexConflict:
    return IndexConflict(
        f"{uri}: {what} refused: another writer changed it since this one read it; "
        "nothing was published",
        hint="one writer at a time: rerun `distill index update` once the other has finished",
    )


def _hint_for(code: str, bucket: str) -> str:
    if code == "NoSuchBucket":
        return f"create the bucket {bucket} first, or check the URI"
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return "check the AWS credentials in the environment and the bucket's policy"
    return "check the URI, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION"
