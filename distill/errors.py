"""Expected failures. The CLI prints them as one line plus a hint and exits 1."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class DistillError(Exception):
    """An expected failure with a message and a hint on how to fix it."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(DistillError):
    """distill.toml or a flag is invalid."""

    hint = "check distill.toml and the command's flags (`distill --help`)"


class InputMissingError(DistillError):
    """A stage's input is not there: the stage before it has not run."""


class ValidationFailed(DistillError):
    """A stage wrote something its own re-check refuses (the firewall held, the run did not)."""

    def __init__(self, message: str, errors: list[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errors = errors


def format_validation_error(err: ValidationError) -> str:
    """pydantic errors as `field: message`, one per error, joined by "; "."""
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


class OutputError(DistillError):
    """The operating system refused a read or write (full disk, permissions, not a file, …)."""


_OS_HINTS = {
    errno.ENOSPC: "free some disk space (or pass --home on another disk) and rerun",
    errno.EDQUOT: "free some of your disk quota and rerun",
    errno.EROFS: "the file system is read-only: pass --home to a writable folder",
    errno.EACCES: "check the file's and its folder's permissions (ls -l)",
    errno.EPERM: "check permissions, and immutable flags (lsattr; chattr -i to clear one)",
    errno.EISDIR: "a folder stands where a file is expected: move it out of the way",
    errno.ENOTDIR: "a file stands where a folder is expected: move it out of the way",
    errno.ELOOP: "a symbolic link points back into itself: fix or remove the link",
    errno.ENOENT: "the file or folder does not exist: check the path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}


def os_error(err: OSError | RuntimeError, action: str = "") -> OutputError:
    """An OS failure as one line naming the file and the cause, with a hint by errno."""
    if isinstance(err, RuntimeError):  # pathlib's resolve() reports a symlink loop this way
        return OutputError(f"{action or 'path'}: {err}", hint=_OS_HINTS[errno.ELOOP])
    where = err.filename if err.filename is not None else "(unnamed file)"
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    cause = err.strerror or str(err)
    code = errno.errorcode.get(err.errno or -1, "")
    prefix = f"{action} " if action else ""
    return OutputError(
        f"{prefix}{where}: {cause}{f' ({code})' if code else ''}",
        hint=_OS_HINTS.get(err.errno or -1, "check the path and rerun"),
    )
