"""Chaos check: kill -9 `distill run-all` at random points, rerun, compare with a clean run.

    python benchmarks/chaos.py [--rows 20000] [--kills 20] [--seed S]
                               [--out benchmarks/results/chaos.md]

A seeded home of ``--rows`` lines (the generator of ``benchmarks/pipeline.py``: every stream,
every rule, planted garbage) is run once to completion: the reference. A copy of it then goes
through ``--kills`` rounds: start ``distill run-all`` (hashing embedder, pinned
``recorded_at``), SIGKILL it after a random delay within the reference run's duration, then
rerun it to completion and compare: every output file (evidence, skips, scored runs, exports,
quarantine) byte for byte with the reference's, the index's content hash, no temp file or
set-aside export left anywhere, and ``distill audit-full`` passing. Not a timed test: a
reliability check, run by hand (~15 minutes on 2 cores). Exit status 0 when every round held.
Run it from a clean checkout (or a ``git worktree``): it imports distill from the folder it
sits in, and code edited while it runs would be measured half old, half new.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.pipeline import generate  # noqa: E402
from distill.home import Home  # noqa: E402
from distill.index import PlaybookStore  # noqa: E402
from distill.index.stage import table_content_hash  # noqa: E402
from distill.leftovers import leftovers  # noqa: E402

RECORDED_AT = "2026-01-01T00:00:00Z"
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]
OUTPUT_GLOBS = [
    "data/evidence/*.jsonl",
    "data/scored-runs/*.jsonl",
    "data/_kb/distillation_skips.jsonl",
    "exports/*/*.jsonl",
]


@dataclass
class Round:
    number: int
    delay: float
    killed_in: str
    rerun_exit: int
    identical: bool
    left_after: int
    audit_passed: bool
    detail: str = ""

    @property
    def held(self) -> bool:
        return self.rerun_exit == 0 and self.identical and not self.left_after and self.audit_passed


def run_all(home: Path) -> subprocess.Popen[bytes]:
    args = ["run-all", "--home", str(home), "--recorded-at", RECORDED_AT, "--embedder", "hash-384"]
    return subprocess.Popen(
        [*DISTILL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def fingerprint(home: Path) -> dict[str, str]:
    """sha256 of every output file, plus the index's content hash and row count."""
    prints = {}
    for pattern in OUTPUT_GLOBS:
        for path in sorted(home.glob(pattern)):
            prints[path.relative_to(home).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    store = PlaybookStore(str(home / "index"))
    prints["index:content"] = table_content_hash(store)
    prints["index:rows"] = str(store.stats()["rows"])
    return prints


def stage_at_kill(home: Path, runs_before: set[str]) -> str:
    """The stage the killed run was in: the one after its last written receipt."""
    order = ["collect", "score", "export_rag", "export_sft", "export_preference", "index"]
    reports = home / "reports" / "distillation"
    if not reports.is_dir():
        return "startup or collect"
    new = [p for p in reports.iterdir() if p.is_dir() and p.name not in runs_before]
    if not new:
        return "startup or collect"
    done = {p.stem for p in new[0].glob("*.json")}
    if "summary" in done:
        return "after the summary"
    for stage in order:
        if stage not in done:
            return stage
    return "summary"


def audit(home: Path, full: bool) -> tuple[bool, str]:
    args = ["audit-full", "--home", str(home), "--embedder", "hash-384"]
    if not full:
        args += ["--skip", "acceptance"]
    proc = subprocess.run([*DISTILL, *args], capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stderr.strip().splitlines()[-1] if proc.stderr else ""


def chaos_round(number: int, home: Path, reference: dict[str, str], span: list[float],
                rng: random.Random) -> Round:  # fmt: skip
    reports = home / "reports" / "distillation"
    before = {p.name for p in reports.iterdir()} if reports.is_dir() else set()
    delay = rng.uniform(*span)
    proc = run_all(home)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    where = stage_at_kill(home, before) if killed else "finished first"
    started = time.perf_counter()
    rerun = run_all(home)
    _, err = rerun.communicate()
    if rerun.returncode == 0:  # an update is quicker than the first build
        span[1] = max(span[0] + 0.1, min(span[1], 0.95 * (time.perf_counter() - started)))
    identical, detail = False, ""
    if rerun.returncode == 0:
        now = fingerprint(Path(home))
        differing = sorted(
            k for k in reference.keys() | now.keys() if reference.get(k) != now.get(k)
        )
        identical, detail = not differing, ", ".join(differing[:3])
    else:
        detail = err.decode(errors="replace").strip().splitlines()[-1]
    left = leftovers(Home(home.resolve()))
    passed, audit_line = audit(home, full=False)
    return Round(number, delay, where, rerun.returncode, identical, len(left), passed,
                 detail or ("" if passed else audit_line))  # fmt: skip


def render(args: argparse.Namespace, clean_seconds: float, rounds: list[Round],
           final_audit: bool) -> str:  # fmt: skip
    killed = [r for r in rounds if r.killed_in != "finished first"]
    held = sum(r.held for r in killed)
    lines = [
        f"# Chaos check: kill -9 run-all at {len(killed)} random points",
        "",
        f"Machine: {describe()}. Home: {args.rows:,} generated lines (seed {args.seed}), "
        f"hashing embedder; a clean run-all took {clean_seconds:.1f} s.",
        "",
        f"**{held}/{len(killed)} kills held** ({len(rounds) - len(killed)} more runs finished "
        "before their kill and were not counted): after each kill, one rerun exited 0 with outputs "
        "byte-identical to the clean run's, no temp file left, and audit-full passing; "
        f"a final full audit-full (acceptance included): {'passed' if final_audit else 'FAILED'}.",
        "",
        "| # | killed after (s) | stage at kill | rerun exit | identical | leftovers | audit | "
        "detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.number} | {r.delay:.2f} | {r.killed_in} | {r.rerun_exit} | "
            f"{'yes' if r.identical else 'NO'} | {r.left_after} | "
            f"{'pass' if r.audit_passed else 'FAIL'} | {r.detail} |"
        )
    kills: dict[str, int] = {}
    for r in killed:
        kills[r.killed_in] = kills.get(r.killed_in, 0) + 1
    lines += ["", "Kills by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(kills.items()))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/chaos.md")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="distill-chaos-"))
    try:
        clean = work / "clean"
        generate(clean, args.rows, args.seed, lambda m: print(m, file=sys.stderr))
        chaos = work / "chaos"
        shutil.copytree(clean, chaos)
        started = time.perf_counter()
        proc = run_all(clean)
        startup = None  # until collect writes: a kill before it would hit the imports only
        while proc.poll() is None:
            if startup is None and (clean / "data" / "evidence").exists():
                startup = time.perf_counter() - started
            time.sleep(0.01)
        if proc.returncode != 0:
            print("the clean run failed", file=sys.stderr)
            return 1
        clean_seconds = time.perf_counter() - started
        span = [startup or 0.0, clean_seconds]  # kill delays are drawn from this window
        reference = fingerprint(clean)
        rounds: list[Round] = []
        attempts = 0
        while sum(r.killed_in != "finished first" for r in rounds) < args.kills:
            attempts += 1
            if attempts > 3 * args.kills:
                print("too many runs finished before their kill", file=sys.stderr)
                break
            result = chaos_round(len(rounds) + 1, chaos, reference, span, rng)
            print(f"round {result.number}: {result}", file=sys.stderr)
            rounds.append(result)
        final, _ = audit(chaos, full=True)
        text = render(args, clean_seconds, rounds, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if final and all(r.held for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
