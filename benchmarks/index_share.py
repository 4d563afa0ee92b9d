"""Where an index build's time goes: the embedding model's share of a MiniLM build.

    python benchmarks/index_share.py [--playbooks 2000] [--out benchmarks/results/index_share.md]

A seeded long-row home (``benchmarks/pipeline_corpus.py``) goes through collect, score and
export rag; its first ``--playbooks`` playbooks are indexed with the real MiniLM embedder (the
model loaded beforehand, its load time reported apart) twice: at the default ANN threshold (no
ANN index below 10,000 rows) and with the ANN index forced. Each build's wall time is split
into the embedder's ``embed`` call and everything else (reading and validating the export, Arrow
conversion, the LanceDB write, the FTS and ANN index builds, term statistics, hashing, the
manifest). Target: the embedding is ≥ 90 % of a build. A third build, under cProfile with the
hashing embedder (same dimension, so the same non-embedding work), names the non-embedding
parts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.pipeline_corpus import SHAPES, generate  # noqa: E402
from distill.config import load_config  # noqa: E402
from distill.home import Home  # noqa: E402
from distill.index import make_embedder  # noqa: E402
from distill.index.embedders import TimedEmbedder  # noqa: E402
from distill.index.stage import index_export  # noqa: E402
from distill.stages import StageContext  # noqa: E402
from distill.stages.registry import stage_named  # noqa: E402

TARGET = 0.90
PARTS = {  # cProfile function names → the part of a build they are
    "read_playbooks": "read + validate the export",
    "source_digest": "hash the export",
    "from_pylist": "Arrow conversion",
    "playbook_row": "Arrow conversion",
    "create_table": "LanceDB write",
    "create_index": "FTS (+ ANN) index build",
    "from_texts": "term statistics",
    "_publish": "manifest + terms publish",
    "table_content_hash": "content hash",
    "rows": "read back ids",
}


def prepare(root: Path, playbooks: int, seed: int) -> Home:
    """A home whose RAG export holds ``playbooks`` playbooks."""
    generate(root, playbooks * 3, seed, lambda message: None, SHAPES["long"])
    home = Home(root.resolve())
    context = StageContext(home, load_config(home.config_path), "2026-01-01T00:00:00Z")
    for stage in ("collect", "score", "export_rag"):
        stage_named(stage).run(context)
    export = home.export_path("rag")
    lines = export.read_bytes().splitlines(keepends=True)
    if len(lines) < playbooks:
        raise SystemExit(f"only {len(lines)} playbooks; raise the corpus size")
    export.write_bytes(b"".join(lines[:playbooks]))
    return home


def timed_build(home: Home, embedder: TimedEmbedder, uri: Path, ann: int) -> tuple[float, float]:
    """(build seconds, embedding seconds) of one full build."""
    embedder.seconds = 0.0
    start = time.perf_counter()
    report, _ = index_export(home, str(uri), embedder, rebuild=True, ann_threshold=ann)
    total = time.perf_counter() - start
    assert report.passed, report.errors
    return total, embedder.seconds


def profiled_parts(home: Home, uri: Path, dim: int) -> tuple[float, dict[str, float]]:
    """The non-embedding parts of a build (hashing embedder, ANN forced), by cumulative time."""
    embedder = TimedEmbedder(make_embedder(f"hash-{dim}"))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    index_export(home, str(uri), embedder, rebuild=True, ann_threshold=1)
    profiler.disable()
    total = time.perf_counter() - start - embedder.seconds
    parts: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (_, _, name), (_, _, _, cumulative, _) in stats.items():
        if name in PARTS:
            parts[PARTS[name]] = parts.get(PARTS[name], 0.0) + cumulative
    return total, parts


def render(
    args: argparse.Namespace, load: float, builds: list[tuple[str, float, float]], first: float
) -> str:
    out = [
        "# Index build: the embedding model's share",
        "",
        f"- command: `python benchmarks/index_share.py --playbooks {args.playbooks}`",
        f"- machine: {describe()}",
        f"- MiniLM load (once, not in a build): {load:.1f} s",
        f"- a first build in the process, with the hashing embedder (loads LanceDB's and the FTS"
        f" index's code; once, not in the builds below): {first:.1f} s",
        "",
        "| build | seconds | embedding s | non-embedding s | embedding share | ≥ 90 % |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for label, total, embed in builds:
        share = embed / total
        out.append(
            f"| {label} | {total:.1f} | {embed:.1f} | {total - embed:.2f} | {share:.1%} "
            f"| {'PASS' if share >= TARGET else 'FAIL'} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--playbooks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/index_share.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="distill-index-share-") as folder:
        root = Path(folder)
        home = prepare(root / "home", args.playbooks, args.seed)
        start = time.perf_counter()
        embedder = TimedEmbedder(make_embedder(None))
        embedder.embed(["warm up"])
        load = time.perf_counter() - start
        # a process's first build also loads LanceDB's and the FTS index's code: paid once, like
        # the model load, so it is timed apart (one build with the hashing embedder)
        start = time.perf_counter()
        timed_build(home, TimedEmbedder(make_embedder(f"hash-{embedder.dim}")), root / "warm", 1)
        load_builds = time.perf_counter() - start
        builds = [
            (f"{args.playbooks:,} playbooks, FTS only (default)", *timed_build(
                home, embedder, root / "index-a", 10_000)),
            (f"{args.playbooks:,} playbooks, FTS + ANN", *timed_build(
                home, embedder, root / "index-b", 1)),
        ]  # fmt: skip
        rest, parts = profiled_parts(home, root / "index-c", embedder.dim)
    text = render(args, load, builds, load_builds)
    text += (
        f"\nNon-embedding parts (one build under cProfile with the hashing embedder, ANN "
        f"forced: {rest:.2f} s with the profiler's overhead):\n\n| part | seconds |\n|---|--:|\n"
    )
    text += "".join(f"| {part} | {s:.2f} |\n" for part, s in sorted(parts.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if all(embed / total >= TARGET for _, total, embed in builds) else 1


if __name__ == "__main__":
    sys.exit(main())
