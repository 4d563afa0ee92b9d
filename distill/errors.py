"""Expected failures. The CLI prints them as one line plus a hint and exits 1."""

from __future__ import annotations


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
