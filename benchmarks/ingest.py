"""Ingest benchmark: collect on real agent-log formats beside the plain JSONL path.

    python benchmarks/ingest.py [--trajectories 500] [--sessions 1000] [--jsonl-rows 100000]
                                [--real-logs DIR] [--out benchmarks/results/ingest.md]

Three homes, each collected by ``distill collect`` in a fresh process (so the peak RSS is the
collect's own, read from the child's ``ru_maxrss``):

- ``mini_swe_agent``: the real mini-swe-agent trajectories and their SWE-bench reports (see
  the real-logs README), replicated under new instance ids up to ``--trajectories`` documents
  (~100 MB for 500): the same bytes a real run writes, one pretty-printed document per file;
- ``claude_code``: the real Claude Code transcripts replicated up to ``--sessions`` session files,
  each under a new ``sessionId`` and new event ``uuid``s;
- ``jsonl``: ``--jsonl-rows`` lines of the pipeline benchmark's generator (all built-in streams).

Per home: units in, evidence out, skipped, input MB, seconds, records/s, seconds per MB and peak
RSS. The real logs are read from ``--real-logs`` and written only into a temporary folder: no
public data lands in the repository. Exit status 0 when every collect passed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.machine import describe  # noqa: E402
from benchmarks.pipeline import generate  # noqa: E402

RECORDED_AT = "2026-01-01T00:00:00Z"
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]
SWE_TOML = """[sources.swe]
format = "mini_swe_agent"
path = "runs/trajs/**/*.traj.json"
verdicts = "runs/logs/*/report.json"
"""
CLAUDE_TOML = """[sources.claude]
format = "claude_code"
path = "logs/claude/**/*.jsonl"
"""


@dataclass
class Measure:
    name: str
    files: int
    megabytes: float
    units_in: int
    out: int
    skipped: int
    seconds: float
    peak_rss_mib: float
    passed: bool

    @property
    def per_second(self) -> float:
        return self.out / self.seconds if self.seconds else 0.0

    @property
    def seconds_per_mb(self) -> float:
        return self.seconds / self.megabytes if self.megabytes else 0.0


def swe_home(root: Path, real: Path, count: int) -> Path:
    """``count`` trajectories: the real ones, then copies of them under new instance ids."""
    originals = sorted((real / "trajs").glob("*/*.traj.json"))
    if not originals:
        raise SystemExit(f"no trajectories under {real / 'trajs'}")
    for i in range(count):
        source = originals[i % len(originals)]
        original_id = source.parent.name
        instance = original_id if i < len(originals) else f"{original_id}-copy{i}"
        document = orjson.loads(source.read_bytes())
        document["instance_id"] = instance
        target = root / "runs" / "trajs" / instance / f"{instance}.traj.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        report = real / "logs" / original_id / "report.json"
        if report.is_file():
            (root / "runs" / "logs" / instance).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, root / "runs" / "logs" / instance / "report.json")
    (root / "distill.toml").write_text(SWE_TOML)
    return root / "runs" / "trajs"


def claude_home(root: Path, real: Path, count: int) -> Path:
    """``count`` session files, each a real transcript under a new sessionId and new uuids."""
    originals = sorted(real.glob("**/transcript.jsonl"))
    if not originals:
        raise SystemExit(f"no transcripts under {real}")
    folder = root / "logs" / "claude" / "-tmp-project"
    folder.mkdir(parents=True)
    for i in range(count):
        lines = originals[i % len(originals)].read_bytes().splitlines()
        session = str(uuid.UUID(int=i + 1))
        renamed: dict[str, str] = {}
        out = []
        for line in lines:
            if not line.strip():
                continue
            event = orjson.loads(line)
            if "sessionId" in event:
                event["sessionId"] = session
            for key in ("uuid", "parentUuid"):
                if isinstance(event.get(key), str):
                    old = event[key]
                    event[key] = renamed.setdefault(
                        old, str(uuid.uuid5(uuid.NAMESPACE_OID, old + session))
                    )
            out.append(orjson.dumps(event))
        (folder / f"{session}.jsonl").write_bytes(b"\n".join(out) + b"\n")
    (root / "distill.toml").write_text(CLAUDE_TOML)
    return folder


def collect(name: str, home: Path, inputs: Path) -> Measure:
    files = [p for p in inputs.rglob("*") if p.is_file()]
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*DISTILL, "collect", "--home", str(home), "--recorded-at", RECORDED_AT, "--json"],
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, peak RSS included
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        print(stderr.decode(errors="replace")[-2000:], file=sys.stderr)
        return Measure(name, len(files), megabytes, 0, 0, 0, seconds, 0.0, False)
    report = orjson.loads(stdout)
    return Measure(
        name=name,
        files=len(files),
        megabytes=megabytes,
        units_in=report["records_in"],
        out=report["records_out"],
        skipped=sum(report["skipped"].values()),
        seconds=seconds,
        peak_rss_mib=usage.ru_maxrss / 1024,
        passed=bool(report["passed"]),
    )


def render(argv: list[str], results: list[Measure]) -> str:
    lines = [
        "# Ingest: collect on real agent-log formats and on plain JSONL",
        "",
        f"Machine: {describe()}. Command: `python benchmarks/ingest.py {' '.join(argv)}`.",
        "",
        "| format | files | input MB | units in | evidence out | skipped | seconds | "
        "records/s | s per MB | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.files:,} | {r.megabytes:.1f} | {r.units_in:,} | {r.out:,} | "
            f"{r.skipped:,} | {r.seconds:.1f} | {r.per_second:,.0f} | {r.seconds_per_mb:.3f} | "
            f"{r.peak_rss_mib:.0f} |"
        )
    lines += [
        "",
        "Seconds are the whole `distill collect` process (interpreter start and imports, ~1 s, "
        "included). Peak RSS is the child's `ru_maxrss`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trajectories", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--jsonl-rows", type=int, default=100_000)
    parser.add_argument("--real-logs", type=Path, default=REPO.parent / "shared" / "real-logs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/ingest.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="distill-ingest-"))
    results = []
    try:
        claude = work / "claude"
        inputs = claude_home(claude, args.real_logs / "claude-code", args.sessions)
        results.append(collect("claude_code", claude, inputs))
        jsonl = work / "jsonl"
        generate(jsonl, args.jsonl_rows, 20260101, lambda m: print(m, file=sys.stderr))
        results.append(collect("jsonl", jsonl, jsonl / "data" / "_kb"))
        swe = work / "swe"
        inputs = swe_home(swe, args.real_logs / "mini-swe-agent", args.trajectories)
        results.append(collect("mini_swe_agent", swe, swe / "runs"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = render(argv, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
