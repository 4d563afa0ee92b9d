"""The pipeline stages: collect → score → export (rag, sft, preference); the order and the
one signature every stage has (the index's included) are in :mod:`distill.stages.registry`."""

from distill.stage_report import StageReport
from distill.stages.collect import collect
from distill.stages.export_datasets import export_rag, export_sft
from distill.stages.export_preference import export_preference
from distill.stages.registry import STAGES, Stage, StageContext, StageFlags, pipeline
from distill.stages.score import score

__all__ = [
    "STAGES",
    "Stage",
    "StageContext",
    "StageFlags",
    "StageReport",
    "collect",
    "export_preference",
    "export_rag",
    "export_sft",
    "pipeline",
    "score",
]
