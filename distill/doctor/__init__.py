"""``distill doctor``: what an operator would otherwise find out the hard way, one line each.

Every check returns a :class:`DoctorCheck` (pass, warn or fail, a detail and the fix). Nothing
here writes the home, takes its writer lock for longer than a probe, or prints a key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from distill.doctor.checks import DoctorCheck, Status
from distill.doctor.endpoints import check_escalation_endpoint, check_model_endpoint
from distill.doctor.runtime import (
    check_embedder,
    check_gguf,
    check_llama_cpp,
    check_python,
    check_torch,
)
from distill.doctor.state import check_disk, check_home, check_index, check_lock
from distill.home import Home
from distill.settings import index_settings


@dataclass(frozen=True)
class DoctorReport:
    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        """False when any check failed (warnings do not count)."""
        return all(check.status != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [check.to_dict() for check in self.checks]}


def run_doctor(
    home: Home, env: Mapping[str, str], on_check: Callable[[DoctorCheck], None] | None = None
) -> DoctorReport:
    """Run every check against ``home`` and the settings ``env`` gives (on the command line,
    the process environment), in the order an operator fixes them."""
    checks: list[DoctorCheck] = []

    def record(check: DoctorCheck) -> DoctorCheck:
        checks.append(check)
        if on_check is not None:
            on_check(check)
        return check

    record(check_python())
    record(check_torch())
    record(check_llama_cpp())
    record(check_gguf(home, env))
    index = index_settings(home, env)
    embedder = record(check_embedder(index))
    record(check_home(home))
    record(check_index(index.uri, embedder.identity))
    record(check_lock(home))
    record(check_disk(home))
    record(check_model_endpoint(home, env))
    record(check_escalation_endpoint(home, env))
    return DoctorReport(checks)


__all__ = ["DoctorCheck", "DoctorReport", "Status", "run_doctor"]
