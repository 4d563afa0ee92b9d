"""Ranking metrics as BEIR reports them (pytrec_eval's definitions), in plain Python.

``qrels`` maps a query id to ``{doc id: relevance}``; a run is a ranked list of doc ids, best
first. A document is relevant when its relevance is above zero. nDCG uses gain = relevance and
a log2(rank + 1) discount; the ideal ranking is built from every judged document of the query.

>>> ndcg_at_k(["d2", "d1"], {"d1": 1}, 10)  # the only relevant doc at rank 2: 1 / log2(3)
0.6309297535714575
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Graded nDCG@k; 0.0 for a query with no relevant document."""
    ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
    ideal_dcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, 1))
    if ideal_dcg == 0:
        return 0.0
    dcg = 0.0
    for rank, doc in enumerate(ranked[:k], 1):
        rel = judged.get(doc, 0)
        if rel > 0:
            dcg += rel / math.log2(rank + 1)
    return dcg / ideal_dcg


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Relevant documents in the top k over all relevant documents of the query."""
    relevant = {doc for doc, rel in judged.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the top k, else 0."""
    for rank, doc in enumerate(ranked[:k], 1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def query_metrics(ranked: Sequence[str], judged: Mapping[str, int]) -> dict[str, float]:
    """The four metrics the eval reports, for one query."""
    return {
        "ndcg@10": ndcg_at_k(ranked, judged, 10),
        "recall@10": recall_at_k(ranked, judged, 10),
        "recall@100": recall_at_k(ranked, judged, 100),
        "mrr@10": mrr_at_k(ranked, judged, 10),
    }


def mean_metrics(runs: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Each metric averaged over the queries of ``qrels`` (a query missing from runs scores 0)."""
    if not qrels:
        return dict.fromkeys(METRICS, 0.0)
    totals = dict.fromkeys(METRICS, 0.0)
    for query_id, judged in qrels.items():
        for name, value in query_metrics(runs.get(query_id, []), judged).items():
            totals[name] += value
    return {name: total / len(qrels) for name, total in totals.items()}
