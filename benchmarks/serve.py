"""Warm `distill serve` against cold CLI calls, and search throughput under concurrent clients.

    python benchmarks/serve.py [--home DIR] [--embedder minilm] [--cold-runs 5] [--warm-runs 50]
                               [--clients 1,8,32] [--seconds 10]

Without ``--home`` it builds a throwaway home from fixtures/sample (run-all with
``--embedder``, default minilm: the real model). It starts ``distill serve`` on that home as a
subprocess on a free port, then measures

- **replay, dry run**: ``distill replay --dry-run --json`` as a fresh process (cold: imports,
  loads the embedder and opens the index every time) against ``POST /v1/replay`` with
  ``dry_run: true`` on the warm server. Same home, same tasks (fixtures/sample/tasks.jsonl), both
  logged. Target: warm ≥ 10× faster (median against median).
- **search throughput**: ``POST /v1/search`` (hybrid, top 8) from 1, 8 and 32 concurrent clients
  for ``--seconds`` each: requests/s, p50/p95 latency, errors.

The clients run on the same machine as the server and share its cores. Writes
benchmarks/results/serve.md and prints it; exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]
GGUF = REPO / "models" / "gemma-3-270m-q4_k_m.gguf"
TARGET = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="A home with an index (default: a fresh one).")
    parser.add_argument("--embedder", default="minilm", help="For the fresh home's index.")
    parser.add_argument("--tasks", type=Path, default=REPO / "fixtures/sample/tasks.jsonl")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-runs", type=int, default=50)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serve.md")
    args = parser.parse_args()
    tasks = [
        orjson.loads(line)["task"] for line in args.tasks.read_bytes().splitlines() if line.strip()
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DISTILL_API_TOKEN", "DISTILL_HOME")}
    with tempfile.TemporaryDirectory(prefix="distill-bench-serve-") as scratch:
        home = args.home.resolve() if args.home else build_home(Path(scratch), args.embedder)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = Path(scratch) / "serve.log"
        with open(server_log, "wb") as log:
            server = subprocess.Popen(
                [*DISTILL, "serve", "--home", str(home), "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            health = wait_healthy(base, server, server_log)
            progress("cold: `distill replay --dry-run` as a new process each time")
            cold = [cold_replay(home, tasks[n % len(tasks)], env) for n in range(args.cold_runs)]
            progress("warm: POST /v1/replay with dry_run")
            warm = warm_replays(base, tasks, args.warm_runs)
            throughput = {}
            for clients in [int(c) for c in args.clients.split(",")]:
                progress(f"search: {clients} client(s) for {args.seconds:.0f} s")
                throughput[clients] = asyncio.run(search_load(base, tasks, clients, args.seconds))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    report, passed = render(args, health, cold, warm, throughput)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    sys.exit(0 if passed else 1)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_home(scratch: Path, embedder: str) -> Path:
    home = scratch / "home"
    shutil.copytree(REPO / "fixtures/sample/data", home / "data")
    (home / "models").mkdir()
    # the shipped GGUF where `make models` put it: the server loads it once at start
    (home / "models/models.toml").write_text(f'[local]\npath = "{GGUF}"\n')
    progress(f"building a home from fixtures/sample with the {embedder} embedder…")
    subprocess.run(
        [*DISTILL, "run-all", "--home", str(home), "--embedder", embedder]
        + [
            "--recorded-at",
            "2026-01-01T00:00:00Z",
            "--repo-root",
            str(REPO / "fixtures/sample/repo"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    started = time.perf_counter()
    while time.perf_counter() - started < 300:
        if server.poll() is not None:
            raise SystemExit(f"distill serve exited:\n{log.read_text()}")
        try:
            health: dict[str, object] = httpx.get(base + "/healthz", timeout=5).json()
            health["start_s"] = round(time.perf_counter() - started, 1)
            return health
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("distill serve did not answer /healthz within 300 s")


def cold_replay(home: Path, task: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*DISTILL, "replay", "--home", str(home), "--task", task, "--dry-run", "--json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def warm_replays(base: str, tasks: list[str], runs: int) -> list[float]:
    timings = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for n in range(3):  # the first requests pay for lazy imports and caches
            client.post("/v1/replay", json={"task": tasks[n], "dry_run": True}).raise_for_status()
        for n in range(runs):
            started = time.perf_counter()
            response = client.post(
                "/v1/replay", json={"task": tasks[n % len(tasks)], "dry_run": True}
            )
            response.raise_for_status()
            timings.append(time.perf_counter() - started)
    return timings


async def search_load(
    base: str, tasks: list[str], clients: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors
        n = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post("/v1/search", json={"query": tasks[n % len(tasks)]})
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)
            n += clients

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client, i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50) * 1000,
        "p95": percentile(latencies, 95) * 1000,
        "errors": errors,
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def render(
    args: argparse.Namespace,
    health: dict[str, object],
    cold: list[float],
    warm: list[float],
    throughput: dict[int, dict[str, float]],
) -> tuple[str, bool]:
    index = health["index"]
    model = health["model"]
    assert isinstance(index, dict) and isinstance(model, dict)
    ratio = statistics.median(cold) / statistics.median(warm)
    passed = ratio >= TARGET
    lines = [
        "# distill serve: warm against cold",
        "",
        f"- command: `{' '.join(['python benchmarks/serve.py', *sys.argv[1:]])}`",
        f"- machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}; clients share the server's cores",
        f"- index: {index['rows']} rows, {index['embedder']}, version {index['version']}; "
        f"model loaded at start: {model['name']}; server ready in {health['start_s']} s",
        "",
        "| replay, dry run | runs | median ms | p95 ms |",
        "|---|--:|--:|--:|",
        f"| cold: `distill replay --dry-run` (new process) | {len(cold)} | "
        f"{statistics.median(cold) * 1000:,.0f} | {percentile(cold, 95) * 1000:,.0f} |",
        f"| warm: `POST /v1/replay` `dry_run` | {len(warm)} | "
        f"{statistics.median(warm) * 1000:,.1f} | {percentile(warm, 95) * 1000:,.1f} |",
        "",
        f"Warm is **{ratio:,.0f}×** faster (target ≥ {TARGET:.0f}×): "
        f"**{'PASS' if passed else 'FAIL'}**",
        "",
        f"| search clients | requests in {args.seconds:.0f} s | requests/s | p50 ms | p95 ms "
        "| errors |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for clients, row in throughput.items():
        lines.append(
            f"| {clients} | {row['requests']:,.0f} | {row['rps']:,.1f} | {row['p50']:,.1f} | "
            f"{row['p95']:,.1f} | {row['errors']:.0f} |"
        )
    return "\n".join(lines) + "\n", passed


if __name__ == "__main__":
    main()
