"""Retrieval quality on SciFact (BEIR): pick the hybrid fusion on train, report it on test.

    python benchmarks/retrieval.py [--beir /work/shared/eval/scifact] [--embedder minilm]
                                   [--alphas 0.3,0.4,0.5,0.6,0.7] [--limit-queries N]
                                   [--out benchmarks/results/retrieval.md]

The corpus is embedded and indexed ONCE (the real ``PlaybookStore`` in a temporary folder) and
every setting queries that same index: fts, vector, jaccard (the old seed's baseline),
hybrid-rrf and hybrid-weighted at each alpha. The hybrid setting with the best nDCG@10 on the
TRAIN split (qrels/train.tsv) becomes the recommended default; test (qrels/test.tsv) is only
read afterwards, for the baselines and the chosen settings.

Target: test nDCG@10 of the chosen hybrid >= 0.72 and above both fts-only and vector-only.
A Markdown report goes to ``--out`` (its folder is git-ignored) and to stdout; progress goes to
stderr. Exit status 0 when the target is met, 1 otherwise. The dataset is read in place and
never copied (SciFact is CC BY-NC: evaluation use only).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

# Before lancedb loads: its scanner logs a deprecation WARN line for every query otherwise.
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from distill.eval.retrieval import (  # noqa: E402
    BeirDataset,
    EvalIndex,
    RetrievalSetting,
    SettingResult,
    build_eval_index,
    evaluate_setting,
    load_beir,
    pinned_blas_threads,
)
from distill.index import make_embedder  # noqa: E402

DEFAULT_BEIR = Path("/work/shared/eval/scifact")
TARGET_NDCG = 0.72
COLUMNS = ["setting", "nDCG@10", "R@10", "R@100", "MRR@10", "p50 ms", "p95 ms", "failed"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_settings(alphas: list[float]) -> list[RetrievalSetting]:
    settings = [
        RetrievalSetting("fts", "fts"),
        RetrievalSetting("vector", "vector"),
        RetrievalSetting("jaccard", "jaccard"),
        RetrievalSetting("hybrid-rrf", "hybrid", "rrf"),
    ]
    settings += [
        RetrievalSetting(f"hybrid-weighted-{a:.1f}", "hybrid", "weighted", a) for a in alphas
    ]
    return settings


def embed_progress(phase: str, done: int, total: int) -> None:
    if phase == "embed" and (done == total or done % 1024 == 0):
        log(f"  embedded {done}/{total}")


def load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def run_split(
    index: EvalIndex, dataset: BeirDataset, settings: list[RetrievalSetting]
) -> list[SettingResult]:
    results = []
    for setting in settings:
        start = time.perf_counter()
        result = evaluate_setting(index, dataset, setting)
        log(
            f"  {dataset.split} {setting.name}: nDCG@10 {result.metrics['ndcg@10']:.4f} "
            f"({time.perf_counter() - start:.0f}s)"
        )
        results.append(result)
    return results


def markdown_table(results: list[SettingResult], chosen: str | None = None) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        data = result.to_dict()
        name = (
            f"**{result.setting.name}** (chosen)"
            if result.setting.name == chosen
            else (result.setting.name)
        )
        cells = [name] + [
            f"{data[m]:.4f}" for m in ("ndcg@10", "recall@10", "recall@100", "mrr@10")
        ]
        cells += [f"{data['p50_ms']:.1f}", f"{data['p95_ms']:.1f}", str(data["failed_queries"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def failures(results: list[SettingResult]) -> list[str]:
    lines = []
    for result in results:
        for query_id, error in sorted(result.failed.items()):
            lines.append(f"- {result.setting.name}, query {query_id}: `{error[:160]}`")
    return lines


def versions() -> str:
    names = ["lancedb", "pylance", "sentence-transformers", "torch", "numpy"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--alphas", default="0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/retrieval.md")
    args = parser.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    load_start = load_average()

    train = load_beir(args.beir, "train").limited(args.limit_queries)
    test = load_beir(args.beir, "test").limited(args.limit_queries)
    embedder = make_embedder(args.embedder)
    with tempfile.TemporaryDirectory(prefix="distill-bench-") as tmp, pinned_blas_threads():
        log(f"embedding {len(train.docs)} docs with {embedder.name} (once)…")
        start = time.perf_counter()
        index = build_eval_index(
            train.docs,
            embedder,
            Path(tmp),
            source_file=str(args.beir / "corpus.jsonl"),
            progress=embed_progress,
        )
        build_s = time.perf_counter() - start
        log(f"indexed in {build_s:.0f}s ({index.embed_docs_per_s or 0:.1f} docs/s embedding)")
        train_results = run_split(index, train, train_settings(alphas))
        hybrids = [r for r in train_results if r.setting.mode == "hybrid"]
        best = max(hybrids, key=lambda r: r.metrics["ndcg@10"]).setting
        test_settings = [r.setting for r in train_results if r.setting.mode != "hybrid"]
        test_settings += [s for s in (hybrids[0].setting, best) if s not in test_settings]
        test_results = run_split(index, test, test_settings)

    by_name = {r.setting.name: r.metrics["ndcg@10"] for r in test_results}
    chosen_ndcg = by_name[best.name]
    passed = (
        chosen_ndcg >= TARGET_NDCG
        and chosen_ndcg > by_name["fts"]
        and chosen_ndcg > by_name["vector"]
    )
    lines = [
        "# Retrieval benchmark: SciFact (BEIR)",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; {versions()}",
        f"- load average (1/5/15 min): {load_start} at start, {load_average()} at end; "
        "timings (docs/s, ms) mean something only on an otherwise idle machine",
        f"- dataset: {train.name}, {len(train.docs)} docs; train {len(train.qrels)} queries, "
        f"test {len(test.qrels)} queries; top 100 per query",
        f"- embedder: {index.embedder}; corpus embedded once: "
        f"{index.embed_docs_per_s or 0:.1f} docs/s (index build {build_s:.0f}s in all)",
        "",
        "## Train (qrels/train.tsv): choosing the fusion",
        "",
        *markdown_table(train_results, best.name),
        "",
        f"Chosen on train: **{best.name}** (fusion={best.fusion}"
        + (f", alpha={best.alpha}" if best.fusion == "weighted" else "")
        + ").",
        "",
        "## Test (qrels/test.tsv)",
        "",
        *markdown_table(test_results, best.name),
        "",
        f"Target: chosen hybrid test nDCG@10 >= {TARGET_NDCG} and above fts and vector: "
        f"**{'PASS' if passed else 'FAIL'}** ({chosen_ndcg:.4f}; fts {by_name['fts']:.4f}, "
        f"vector {by_name['vector']:.4f}).",
    ]
    failed = failures(train_results + test_results)
    if failed:
        lines += ["", "## Failed queries (scored as 0)", "", *failed]
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
