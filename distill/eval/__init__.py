"""Evaluation: how well the index retrieves, on public BEIR-format datasets."""

from distill.eval.metrics import METRICS, mean_metrics, mrr_at_k, ndcg_at_k, recall_at_k
from distill.eval.retrieval import (
    ALL_MODES,
    BeirDataset,
    BeirDoc,
    EvalIndex,
    RetrievalReport,
    RetrievalSetting,
    SettingResult,
    beir_sample,
    build_eval_index,
    evaluate_setting,
    load_beir,
    run_retrieval_eval,
    settings_for,
)

__all__ = [
    "ALL_MODES",
    "METRICS",
    "BeirDataset",
    "BeirDoc",
    "EvalIndex",
    "RetrievalReport",
    "RetrievalSetting",
    "SettingResult",
    "beir_sample",
    "build_eval_index",
    "evaluate_setting",
    "load_beir",
    "mean_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "run_retrieval_eval",
    "settings_for",
]
