"""run-all --dry-run: every stage of the registry, in order, computing and writing nothing.

A dry run writes nothing, so each stage reads what is on disk now: the score preview reads the
evidence of the last real collect, not the collect preview before it. On a home no real run has
prepared, the first stage whose input is missing ends the preview; the stages from it on are
listed as not previewed, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from distill.config import Config
from distill.errors import InputMissingError
from distill.home import Home
from distill.runs.runner import RunOptions, stage_context
from distill.stage_report import StageReport
from distill.stages.registry import Stage, pipeline


@dataclass
class RunPreview:
    """The reports of the stages a dry run reached, and why it stopped before the others."""

    reports: list[StageReport] = field(default_factory=list)
    not_previewed: list[tuple[str, str]] = field(default_factory=list)  # (stage, why)

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.reports)

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": True,
            "passed": self.passed,
            "stages": [report.to_dict() for report in self.reports],
            "not_previewed": [{"stage": s, "reason": why} for s, why in self.not_previewed],
        }


def preview_all(
    home: Home,
    config: Config,
    options: RunOptions,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> RunPreview:
    """Each stage of run-all with ``dry_run`` set; like run-all, a failed stage stops the rest."""
    context = stage_context(home, config, options, dry_run=True)
    stages = pipeline(index=options.index)
    preview = RunPreview()
    for position, stage in enumerate(stages):
        if on_stage is not None:
            on_stage(stage.name)
        try:
            report = stage.run(context)
        except InputMissingError as err:
            why = f"{err}: a dry run writes nothing, so it needs a real run first"
            preview.not_previewed = [(stage.name, why), *_after(stages[position + 1 :], stage)]
            break
        preview.reports.append(report)
        if not report.passed:
            preview.not_previewed = _after(stages[position + 1 :], stage)
            break
    return preview


def _after(rest: Sequence[Stage], stopped: Stage) -> list[tuple[str, str]]:
    return [(stage.name, f"not reached: the preview stopped at {stopped.name}") for stage in rest]
