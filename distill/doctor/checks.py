"""The result every doctor check returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from distill.secrets import scrub

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class DoctorCheck:
    """One line of ``distill doctor``: what was checked, how it went, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    identity: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": scrub(self.detail),
            "fix": scrub(self.fix) if self.fix else None,
        }


def passed(name: str, detail: str) -> DoctorCheck:
    return DoctorCheck(name, "pass", detail)


def warned(name: str, detail: str, fix: str) -> DoctorCheck:
    return DoctorCheck(name, "warn", detail, fix)


def failed(name: str, detail: str, fix: str) -> DoctorCheck:
    return DoctorCheck(name, "fail", detail, fix)
