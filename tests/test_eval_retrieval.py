"""distill eval retrieval: the metrics against pytrec_eval, the BEIR loader, the CLI end to end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from distill.errors import DistillError, InputMissingError
from distill.eval import (
    BeirDoc,
    beir_sample,
    load_beir,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    run_retrieval_eval,
    settings_for,
)
from distill.eval.retrieval import JaccardIndex
from distill.jsonio import canonical_hash

runner = CliRunner()

DOCS = [
    ("d1", "Volcanic eruptions", "Magma rises through the crust and erupts as lava and ash."),
    ("d2", "Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar."),
    ("d3", "Tidal forces", "The gravity of the moon raises ocean tides twice a day."),
    ("d4", "Insulin signalling", "Insulin lowers blood glucose by moving sugar into cells."),
    ("d5", "Coral bleaching", "Warm seas make corals expel their algae and turn white."),
    ("d6", "Black holes", "A black hole bends light so strongly that nothing escapes."),
    ("d7", "Antibiotic resistance", "Bacteria survive antibiotics through mutation."),
    ("d8", "Glacier retreat", "Glaciers shrink as summer melt outpaces winter snowfall."),
]
QUERIES = {
    "q1": "Why does lava come out of a volcano?",
    "q2": "How do plants make sugar from sunlight?",
    "q3": "What causes tides in the ocean?",
    "q4": "Bacteria survive antibiotics through mutation.",  # word for word: d7's text
    "q5": "unjudged query, never scored",
}
QRELS = {
    "test": [("q1", "d1", 2), ("q2", "d2", 1), ("q3", "d3", 1), ("q3", "d8", 0), ("q4", "d7", 1)],
    "exact": [("q4", "d7", 1)],
}


def write_beir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_bytes(
        b"".join(
            orjson.dumps({"_id": i, "title": title, "text": text, "metadata": {}}) + b"\n"
            for i, title, text in DOCS
        )
    )
    (folder / "queries.jsonl").write_bytes(
        b"".join(orjson.dumps({"_id": i, "text": text}) + b"\n" for i, text in QUERIES.items())
    )
    (folder / "qrels").mkdir(exist_ok=True)
    for split, rows in QRELS.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def eval_app() -> typer.Typer:
    """The real app once `eval` is registered there; until then the sub-app on its own root."""
    from distill.cli import app
    from distill.cli.eval import app as sub_app

    if any(group.name == "eval" for group in app.registered_groups):
        return app
    root = typer.Typer()
    root.add_typer(sub_app, name="eval")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(eval_app(), ["eval", "retrieval", *args])
    return result.exit_code, result.stdout, result.stderr


# --- metrics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranked", "judged", "ndcg", "recall10", "mrr"),
    [
        (["a", "b"], {"a": 1}, 1.0, 1.0, 1.0),
        (["x", "a"], {"a": 1}, 1 / math.log2(3), 1.0, 0.5),
        (["x", "y"], {"a": 1}, 0.0, 0.0, 0.0),
        # b (rel 1) at 1, a (rel 2) at 3: (1 + 2/2) / (2 + 1/log2 3)
        (["b", "x", "a"], {"a": 2, "b": 1, "c": 0}, 2 / (2 + 1 / math.log2(3)), 1.0, 1.0),
        ([f"n{i}" for i in range(10)] + ["a"], {"a": 1, "b": 1}, 0.0, 0.0, 0.0),
        ([], {"a": 1}, 0.0, 0.0, 0.0),
        (["a"], {"a": 0}, 0.0, 0.0, 0.0),  # judged, but not relevant
    ],
)
def test_metrics_by_hand(
    ranked: list[str], judged: dict[str, int], ndcg: float, recall10: float, mrr: float
) -> None:
    assert ndcg_at_k(ranked, judged, 10) == pytest.approx(ndcg)
    assert recall_at_k(ranked, judged, 10) == pytest.approx(recall10)
    assert mrr_at_k(ranked, judged, 10) == pytest.approx(mrr)


def test_recall_counts_all_relevant_docs() -> None:
    judged = {"a": 1, "b": 1, "c": 2, "d": 0}
    assert recall_at_k(["a", "d", "x", "c"], judged, 2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "d", "x", "c"], judged, 100) == pytest.approx(2 / 3)


def test_mean_metrics_scores_missing_queries_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    means = mean_metrics({"q1": ["a"]}, qrels)
    assert means["ndcg@10"] == pytest.approx(0.5)
    assert means["mrr@10"] == pytest.approx(0.5)


_DOC_IDS = [f"d{i}" for i in range(40)]


@st.composite
def _judged_runs(draw: st.DrawFn) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    qrels: dict[str, dict[str, int]] = {}
    runs: dict[str, list[str]] = {}
    for q in range(draw(st.integers(1, 4))):
        judged = draw(st.dictionaries(st.sampled_from(_DOC_IDS), st.integers(0, 3), min_size=1))
        if not any(judged.values()):  # pytrec_eval and BEIR only see queries with a relevant doc
            judged[next(iter(judged))] = 1
        qrels[f"q{q}"] = judged
        runs[f"q{q}"] = draw(st.permutations(_DOC_IDS))[: draw(st.integers(0, 40))]
    return qrels, runs


@settings(max_examples=150, deadline=None)
@given(_judged_runs())
def test_metrics_match_pytrec_eval(
    case: tuple[dict[str, dict[str, int]], dict[str, list[str]]],
) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, runs = case
    # distinct descending scores, so pytrec_eval's own sort keeps our order
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in runs.items()}
    cut10 = {
        q: {d: s for d, s in docs.items() if s > len(runs[q]) - 10} for q, docs in scored.items()
    }
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_10", "recall_100"})
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    expected_full, expected_mrr = full.evaluate(scored), mrr.evaluate(cut10)
    for q, ranked in runs.items():
        reference = expected_full.get(q, {"ndcg_cut_10": 0.0, "recall_10": 0.0, "recall_100": 0.0})
        assert ndcg_at_k(ranked, qrels[q], 10) == pytest.approx(reference["ndcg_cut_10"])
        assert recall_at_k(ranked, qrels[q], 10) == pytest.approx(reference["recall_10"])
        assert recall_at_k(ranked, qrels[q], 100) == pytest.approx(reference["recall_100"])
        rr = expected_mrr.get(q, {}).get("recip_rank", 0.0)
        assert mrr_at_k(ranked, qrels[q], 10) == pytest.approx(rr)


# --- loader -------------------------------------------------------------------------------


def test_load_beir_keeps_judged_queries(tmp_path: Path) -> None:
    dataset = load_beir(write_beir(tmp_path / "tiny"), "test")
    assert dataset.name == "tiny" and dataset.split == "test"
    assert [doc.id for doc in dataset.docs] == [d[0] for d in DOCS]
    assert list(dataset.qrels) == ["q1", "q2", "q3", "q4"]
    assert set(dataset.queries) == {"q1", "q2", "q3", "q4"}
    assert dataset.qrels["q3"] == {"d3": 1, "d8": 0}
    assert dataset.qrels["q1"] == {"d1": 2}
    assert list(dataset.limited(2).qrels) == ["q1", "q2"]


def test_load_beir_names_the_available_splits(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    with pytest.raises(InputMissingError) as err:
        load_beir(folder, "dev")
    assert "exact, test" in err.value.hint


def test_load_beir_refuses_judgements_for_unknown_queries(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    (folder / "qrels" / "bad.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n")
    with pytest.raises(DistillError, match="not in queries.jsonl"):
        load_beir(folder, "bad")


def test_beir_sample_carries_provenance(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    doc = load_beir(folder, "test").docs[1]
    sample = beir_sample(doc, source_file="corpus.jsonl", recorded_at="2026-01-01T00:00:00Z")
    title, text = DOCS[1][1], DOCS[1][2]
    assert sample.id == "d2" and sample.source == "beir" and sample.category == "accepted"
    assert sample.text == f"{title}\n\n{text}"
    assert (sample.instruction, sample.response) == (title, text)
    assert sample.provenance.line == 2
    row = {"_id": "d2", "title": title, "text": text, "metadata": {}}
    assert sample.provenance.sig_hash == canonical_hash(row)


def test_jaccard_ranks_by_token_overlap() -> None:
    docs = [
        BeirDoc(i, "", text, n, "0" * 64)
        for n, (i, text) in enumerate(
            [("a", "red apple pie"), ("b", "red car"), ("c", "blue sky")], 1
        )
    ]
    assert JaccardIndex(docs).search("Red apple!", 10) == ["a", "b"]


# --- end to end ---------------------------------------------------------------------------


def test_cli_scores_every_mode(tmp_path: Path) -> None:
    code, out, err = invoke(
        "--beir", str(write_beir(tmp_path / "tiny")), "--embedder", "hash-384", "--json"
    )
    assert code == 0, err
    report = orjson.loads(out)
    assert (report["dataset"], report["split"], report["queries"], report["docs"]) == (
        "tiny",
        "test",
        4,
        8,
    )
    assert report["embedder"] == "hash-384" and report["embed_docs_per_s"] > 0
    assert set(report["modes"]) == {"fts", "vector", "hybrid", "jaccard"}
    for metrics in report["modes"].values():
        for name in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
            assert 0.0 <= metrics[name] <= 1.0
        assert metrics["p95_ms"] >= metrics["p50_ms"] >= 0
        assert metrics["failed_queries"] == 0
    assert report["modes"]["fts"]["recall@100"] == 1.0
    assert "nDCG@10" in err  # the table goes to stderr when stdout carries JSON


def test_cli_exact_match_ranks_its_doc_first_with_fts(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    code, out, err = invoke(
        "--beir",
        str(folder),
        "--split",
        "exact",
        "--mode",
        "fts",
        "--embedder",
        "hash-384",
        "--json",
    )
    assert code == 0, err
    fts = orjson.loads(out)["modes"]["fts"]
    assert fts["mrr@10"] == 1.0 and fts["ndcg@10"] == 1.0


def test_cli_prints_a_table_without_json(tmp_path: Path) -> None:
    code, out, _ = invoke(
        "--beir", str(write_beir(tmp_path / "tiny")), "--mode", "jaccard", "--limit-queries", "2"
    )
    assert code == 0
    assert "jaccard" in out and "nDCG@10" in out and "2 queries" in out


def test_cli_missing_files_exit_1_with_hint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = invoke("--beir", str(tmp_path / "empty"), "--mode", "jaccard")
    assert code == 1
    assert "corpus.jsonl" in err and "hint" in err


@pytest.mark.slow
def test_minilm_finds_paraphrases(tmp_path: Path) -> None:
    from distill.index import make_embedder

    fillers = [
        (f"f{i}", f"Report {i}", f"Quarterly figures for warehouse {i} in region {i % 7}.")
        for i in range(42)
    ]
    folder = tmp_path / "small"
    write_beir(folder)
    corpus = [{"_id": i, "title": t, "text": x} for i, t, x in DOCS + fillers]
    (folder / "corpus.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in corpus))
    dataset = load_beir(folder, "test")
    modes: Any = ["vector", "hybrid"]
    report = run_retrieval_eval(dataset, make_embedder("minilm"), settings_for(modes))
    assert report.docs == 50 and report.embedder == "all-MiniLM-L6-v2"
    by_mode = {r.setting.name: r for r in report.results}
    assert by_mode["vector"].metrics["mrr@10"] == 1.0
    assert 0.0 <= by_mode["hybrid"].metrics["ndcg@10"] <= 1.0
