"""Embedder speed and quality: torch MiniLM (fp32) against its ONNX Runtime exports, one run.

    python benchmarks/embedders.py [--beir /work/shared/eval/scifact]
                                   [--embedders minilm,minilm-onnx,minilm-onnx-int8]
                                   [--speed-docs 1000] [--rounds 3]
                                   [--out benchmarks/results/embedders.md]

**Speed.** Each embedder is loaded once (a missing ONNX export is made first and its time
reported apart), warmed up on 32 docs, then embeds the first ``--speed-docs`` SciFact documents
(title + text, as an index build embeds them) ``--rounds`` times. The rounds interleave the
embedders, rotating their order, so a neighbour's load on a shared machine falls on all of
them; docs/s is the median round. Every round's vectors must be byte-identical to the first's
(the determinism an index update relies on); a difference fails the run.

**Quality.** ``distill eval retrieval --beir DIR --split test --mode all --embedder NAME --json``
per embedder, in a fresh process: SciFact's whole corpus indexed with that embedder, nDCG@10
of vector search and of the default hybrid search on the 300 judged test queries. The table's
"whole corpus docs/s" is each eval's own embedding rate: those run one after another, so on a
shared machine they compare across rows only if the load stayed the same.

**Target** (per ONNX embedder): docs/s >= 2x torch's, and nDCG@10 (vector and hybrid) no more
than 0.005 below torch's. The report (Markdown, to ``--out``, whose folder is git-ignored, and
to stdout) ends with the fastest embedder that meets it, if any. Exit status 0 when one does.
The dataset is read in place and never copied (SciFact is CC BY-NC: evaluation use only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, ever
os.environ.setdefault("LANCE_LOG", "error")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from distill.eval.retrieval import load_beir, pinned_blas_threads  # noqa: E402
from distill.index import make_embedder  # noqa: E402
from distill.index.embedders import Embedder  # noqa: E402

DEFAULT_BEIR = Path("/work/shared/eval/scifact")
DEFAULT_EMBEDDERS = "minilm,minilm-onnx,minilm-onnx-int8"
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]
SPEEDUP = 2.0
MAX_NDCG_DROP = 0.005
MODES = ("vector", "hybrid")


@dataclass
class Measured:
    name: str
    load_s: float
    rounds: list[float] = field(default_factory=list)  # docs/s per round
    deterministic: bool = True
    ndcg: dict[str, float] = field(default_factory=dict)  # mode -> test nDCG@10
    corpus_docs_per_s: float | None = None  # the eval's whole-corpus embedding rate
    eval_size: str = ""  # "<docs> docs, <queries> queries"

    @property
    def docs_per_s(self) -> float:
        return statistics.median(self.rounds)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(names: list[str]) -> tuple[dict[str, Embedder], dict[str, Measured]]:
    embedders, measured = {}, {}
    for name in names:
        start = time.perf_counter()
        embedders[name] = make_embedder(name)
        measured[name] = Measured(name, time.perf_counter() - start)
        log(f"loaded {name} in {measured[name].load_s:.1f}s")
    return embedders, measured


def measure_speed(
    embedders: dict[str, Embedder], measured: dict[str, Measured], texts: list[str], rounds: int
) -> None:
    names = list(embedders)
    first: dict[str, bytes] = {}
    with pinned_blas_threads():
        for name in names:
            embedders[name].embed(texts[:32])  # warm-up: first-call allocations, thread pools
        for round_no in range(rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                vectors = embedders[name].embed(texts)
                rate = len(texts) / (time.perf_counter() - start)
                measured[name].rounds.append(rate)
                blob = vectors.tobytes()
                measured[name].deterministic &= first.setdefault(name, blob) == blob
                log(f"  round {round_no + 1}: {name} {rate:.1f} docs/s")


def measure_quality(beir: Path, measured: Measured) -> None:
    command = [*DISTILL, "eval", "retrieval", "--beir", str(beir), "--split", "test"]
    command += ["--mode", "all", "--embedder", measured.name, "--json"]
    log(f"  {shlex.join(command[3:])}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"eval retrieval failed for {measured.name}:\n{done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    measured.ndcg = {mode: float(report["modes"][mode]["ndcg@10"]) for mode in MODES}
    measured.corpus_docs_per_s = report.get("embed_docs_per_s")
    measured.eval_size = f"{report['docs']} docs, {report['queries']} judged queries"
    log(f"  {measured.name}: " + ", ".join(f"{m} {v:.4f}" for m, v in measured.ndcg.items()))


def meets_target(candidate: Measured, base: Measured) -> bool:
    fast = candidate.docs_per_s >= SPEEDUP * base.docs_per_s
    close = all(candidate.ndcg[m] >= base.ndcg[m] - MAX_NDCG_DROP for m in MODES)
    return candidate.name != base.name and fast and close and candidate.deterministic


def table(results: list[Measured]) -> list[str]:
    base = results[0]
    lines = [
        "| embedder | docs/s (median) | rounds | × torch | whole corpus docs/s "
        "| nDCG@10 vector | Δ | nDCG@10 hybrid | Δ | deterministic | target |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in results:
        rounds = " / ".join(f"{rate:.1f}" for rate in r.rounds)
        corpus = f"{r.corpus_docs_per_s:.1f}" if r.corpus_docs_per_s else "n/a"
        deltas = [f"{r.ndcg[m]:.4f} | {r.ndcg[m] - base.ndcg[m]:+.4f}" for m in MODES]
        verdict = "baseline" if r is base else ("**met**" if meets_target(r, base) else "missed")
        lines.append(
            f"| {r.name} | {r.docs_per_s:.1f} | {rounds} | {r.docs_per_s / base.docs_per_s:.2f}× "
            f"| {corpus} | {' | '.join(deltas)} | {'yes' if r.deterministic else '**no**'} "
            f"| {verdict} |"
        )
    return lines


def versions() -> str:
    found = []
    for name in ("torch", "sentence-transformers", "onnxruntime", "onnx", "lancedb"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def report(args: argparse.Namespace, results: list[Measured], load_start: str) -> str:
    passing = [r for r in results if meets_target(r, results[0])]
    best = max(passing, key=lambda r: r.docs_per_s) if passing else None
    verdict = (
        f"**{best.name}** is the fastest that meets the target ({best.docs_per_s:.1f} docs/s)."
        if best
        else "**None** meets the target."
    )
    loads = ", ".join(f"{r.name} {r.load_s:.1f}s" for r in results)
    lines = [
        "# Embedders: speed and SciFact quality",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- machine: {describe()}, Python {platform.python_version()}; {versions()}",
        f"- load average (1/5/15 min): {load_start} at start, {load_average()} at end; "
        "docs/s are comparable within this run only",
        f"- speed: the first {args.speed_docs} SciFact docs (title + text), {args.rounds} "
        "interleaved rounds, median; load (incl. a first ONNX export): " + loads,
        "- quality: `distill eval retrieval --split test --mode all` per embedder, in its own "
        f"process ({results[0].eval_size}); Δ against torch fp32",
        "",
        *table(results),
        "",
        f"Target: docs/s ≥ {SPEEDUP:.0f}× torch and nDCG@10 (vector and hybrid) at most "
        f"{MAX_NDCG_DROP} below torch's. {verdict}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR)
    parser.add_argument("--embedders", default=DEFAULT_EMBEDDERS, help="the first is the base")
    parser.add_argument("--speed-docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/embedders.md")
    args = parser.parse_args(argv)
    load_start = load_average()
    names = [name.strip() for name in args.embedders.split(",") if name.strip()]
    docs = load_beir(args.beir, "test").docs[: args.speed_docs]
    texts = [f"{doc.title}\n\n{doc.text}".strip() for doc in docs]
    embedders, measured = load(names)
    log(f"speed: {len(texts)} docs × {args.rounds} rounds")
    measure_speed(embedders, measured, texts, args.rounds)
    embedders.clear()  # free the models before the eval processes load their own
    log("quality: SciFact test, one eval process per embedder")
    for name in names:
        measure_quality(args.beir, measured[name])
    results = [measured[name] for name in names]
    text = report(args, results, load_start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if any(meets_target(r, results[0]) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
