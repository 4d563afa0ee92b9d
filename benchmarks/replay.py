"""Where a replay's time goes: everything but generation must be ≤ 5% of an embedded replay.

    python benchmarks/replay.py [--home .] [--tasks fixtures/sample/tasks.jsonl] [--limit 8]

Needs an index in the home (`make demo` builds one) and the embedded model (`make models`).
Writes benchmarks/results/replay.md and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import orjson

from distill.home import Home
from distill.index import PlaybookStore, Retriever
from distill.jsonio import append_line_locked, model_line
from distill.replay import build_bundle
from distill.replay.config import open_model
from distill.replay.run import ReplayOptions, _evidence, _record
from distill.replay.semantic import gate_answer
from distill.settings import local_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("."))
    parser.add_argument("--tasks", type=Path, default=Path("fixtures/sample/tasks.jsonl"))
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/replay.md"))
    args = parser.parse_args()
    home = Home(args.home.resolve())
    tasks = [
        orjson.loads(line)["task"] for line in args.tasks.read_bytes().splitlines() if line.strip()
    ][: args.limit]
    retriever = Retriever(PlaybookStore(str(home.index_dir)))
    model = open_model(local_model(home, os.environ))
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "distill-bench-replay.jsonl"
    phases: dict[str, list[float]] = {
        k: [] for k in ("retrieval", "bundle", "generation", "gate", "log")
    }
    retriever.search("warm up", top_k=8)
    for task in tasks:
        clock = time.perf_counter()
        hits = retriever.search(task, mode="hybrid", top_k=8)
        phases["retrieval"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        bundle = build_bundle(
            task, hits, budget=1500, count=lambda text: model.count_tokens(text) or len(text)
        )
        phases["bundle"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        completion = model.complete(bundle, max_tokens=args.max_tokens)
        phases["generation"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        options = ReplayOptions()
        evidence = _evidence(home, hits, bundle, retriever, options)  # rejected runs read too
        gate_answer(completion.text, bundle, evidence)
        phases["gate"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        run = _record(task, options, hits, retriever, bundle, [])
        append_line_locked(log, model_line(run))
        phases["log"].append(time.perf_counter() - clock)
    total = sum(sum(v) for v in phases.values())
    overhead = total - sum(phases["generation"])
    lines = [
        "# replay time split",
        "",
        f"- command: `python benchmarks/replay.py --limit {args.limit}`",
        f"- machine: {os.cpu_count()} cores, python {platform.python_version()}",
        f"- model: {model.name} ({model.prompt_style} style), max_tokens {args.max_tokens}, "
        f"{len(tasks)} tasks from {args.tasks}",
        "",
        "| phase | mean ms | share |",
        "|---|--:|--:|",
    ]
    for name, values in phases.items():
        lines.append(
            f"| {name} | {statistics.mean(values) * 1000:.1f} | {sum(values) / total:.1%} |"
        )
    verdict = "PASS" if overhead / total <= 0.05 else "FAIL"
    lines += [
        "",
        f"Everything but generation: {overhead / total:.1%} of the wall time "
        f"(target ≤ 5%): **{verdict}**",
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
