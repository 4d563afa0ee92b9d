"""The pipeline stages: collect → score → export (rag, sft, preference)."""

from distill.stage_report import StageReport
from distill.stages.collect import collect
from distill.stages.export_datasets import export_rag, export_sft
from distill.stages.export_preference import export_preference
from distill.stages.score import score

__all__ = ["StageReport", "collect", "export_preference", "export_rag", "export_sft", "score"]
