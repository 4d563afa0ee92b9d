"""Tool-call latency of a warm `distill mcp` against the CLI's cold start.

    python benchmarks/mcp_tools.py [--home DIR] [--embedder minilm] [--cold-runs 3] [--warm-runs 50]

Without ``--home`` it builds a throwaway home from fixtures/sample (run-all with
``--embedder``, default minilm: the real model). It launches ``distill mcp`` over stdio through
the SDK's own client (what an agent does), then times ``search_playbooks`` (hybrid, top 8) and
``replay`` with ``dry_run`` on the sample tasks (p50/p95, warm: after one untimed call each),
against ``distill index search --json`` and ``distill replay --dry-run --json`` as fresh
processes. Writes benchmarks/results/mcp.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="A home with an index (default: a fresh one).")
    parser.add_argument("--embedder", default="minilm", help="For the fresh home's index.")
    parser.add_argument("--tasks", type=Path, default=REPO / "fixtures/sample/tasks.jsonl")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=50)
    args = parser.parse_args()
    tasks = [orjson.loads(line)["task"] for line in args.tasks.read_bytes().splitlines() if line]
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or fresh_home(Path(scratch), args.embedder)
        cold = {
            "search": timed_cli(["index", "search", "--json", "--home", str(home)], tasks, args),
            "replay": timed_cli(
                ["replay", "--dry-run", "--json", "--home", str(home), "--task"], tasks, args
            ),
        }
        warm = asyncio.run(warm_calls(home, tasks, args.warm_runs))
    report = render(cold, warm, args)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "mcp.md").write_text(report)
    print(report)


def fresh_home(root: Path, embedder: str) -> Path:
    shutil.copytree(REPO / "fixtures" / "sample" / "data", root / "home" / "data")
    command = [*DISTILL, "run-all", "--home", str(root / "home"), "--embedder", embedder]
    command += ["--recorded-at", "2026-01-01T00:00:00Z", "--repo-root", "fixtures/sample/repo"]
    subprocess.run(command, check=True, cwd=REPO, capture_output=True)
    return root / "home"


def timed_cli(command: list[str], tasks: list[str], args: argparse.Namespace) -> list[float]:
    times = []
    for n in range(args.cold_runs):
        started = time.perf_counter()
        done = subprocess.run([*DISTILL, *command, tasks[n % len(tasks)]], capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode not in (0, 2):
            raise SystemExit(done.stderr.decode())
    return times


async def warm_calls(home: Path, tasks: list[str], runs: int) -> dict[str, list[float]]:
    params = StdioServerParameters(
        command=DISTILL[0], args=[*DISTILL[1:], "mcp", "--home", str(home)]
    )
    times: dict[str, list[float]] = {"search": [], "replay": []}
    calls: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
        "search": lambda task: ("search_playbooks", {"query": task, "top_k": 8}),
        "replay": lambda task: ("replay", {"task": task, "dry_run": True}),
    }
    async with Client(params) as client:
        for kind, make in calls.items():
            await client.call_tool(*make(tasks[0]))  # untimed: the first call warms caches
            for n in range(runs):
                started = time.perf_counter()
                result = await client.call_tool(*make(tasks[n % len(tasks)]))
                times[kind].append((time.perf_counter() - started) * 1000)
                if result.is_error:
                    raise SystemExit(str(result.content))
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def render(
    cold: dict[str, list[float]], warm: dict[str, list[float]], args: argparse.Namespace
) -> str:
    rows = [
        "| call | runs | p50 ms | p95 ms |",
        "|---|--:|--:|--:|",
    ]
    names = {
        "search": ("`distill index search --json` (new process)", "MCP `search_playbooks`"),
        "replay": ("`distill replay --dry-run --json` (new process)", "MCP `replay` dry_run"),
    }
    for kind, (cli, tool) in names.items():
        for label, values in ((f"cold: {cli}", cold[kind]), (f"warm: {tool}", warm[kind])):
            rows.append(
                f"| {label} | {len(values)} | {statistics.median(values):,.1f} | "
                f"{p95(values):,.1f} |"
            )
    speedup = {k: statistics.median(cold[k]) / statistics.median(warm[k]) for k in cold}
    rows.append("")
    rows.append(
        f"Warm over cold (median): search {speedup['search']:,.0f}×, "
        f"replay dry run {speedup['replay']:,.0f}× (embedder: {args.embedder})."
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
