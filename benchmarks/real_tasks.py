"""Relevance and abstention on real logs: SWE-bench trajectories, their own issues as tasks.

    python benchmarks/real_tasks.py [--real-logs DIR] [--replay] [--out FILE]

A home is built in a temporary folder over the unmodified mini-swe-agent samples (read in
place; nothing is copied into the repository), with their SWE-bench reports as verdicts, and
run with the default MiniLM embedder. Each trajectory's issue then becomes two tasks:

- ``title``: the issue's first line, as a user would type it;
- ``body``: the issue's first paragraph after the title, without the title's words in front.

A resolved instance's run is accepted, so its tasks are in scope (``relevant_ids`` = its
playbook). An unresolved instance's run is rejected and never enters the RAG set: the team has
no accepted run for it, so its tasks are ``out_of_scope`` — exactly the case where a fused score
still puts a sibling run of the same repository on top. ``distill eval retrieval --tasks`` then
reports per kind how many tasks retrieve their playbook and the relevance curve; with
``--replay``, ``distill eval replay`` runs the embedded model on every task too (slow).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]
TOML = """[sources.swe]
format = "mini_swe_agent"
path = "runs/trajs/**/*.traj.json"
verdicts = "runs/logs/*/report.json"
"""


def issue_text(trajectory: Path) -> str:
    """The issue inside the trajectory's ``<pr_description>``."""
    document = orjson.loads(trajectory.read_bytes())
    for message in document.get("messages", []):
        if message.get("role") == "user":
            content = str(message.get("content", ""))
            inside = content.split("<pr_description>", 1)[-1].split("</pr_description>", 1)[0]
            lines = [ln for ln in inside.strip().splitlines() if ln.strip()]
            if lines and lines[0].startswith("Consider the following PR description"):
                lines = lines[1:]
            return "\n".join(lines)
    return ""


def tasks_for(real: Path) -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = []
    for trajectory in sorted((real / "trajs").glob("*/*.traj.json")):
        instance = trajectory.parent.name
        report = real / "logs" / instance / "report.json"
        resolved = report.is_file() and bool(orjson.loads(report.read_bytes()).get("resolved"))
        lines = issue_text(trajectory).splitlines()
        if not lines:
            continue
        title = lines[0].strip("# ").strip()
        body = " ".join(ln.strip() for ln in lines[1:6] if not ln.lstrip().startswith("<!--"))
        relevant = [f"swe:{instance}"] if resolved else []
        for kind, text in (("title", title), ("body", body[:600])):
            if text:
                label = kind if resolved else "out_of_scope"
                tasks.append(
                    {"task": text, "task_id": instance, "relevant_ids": relevant, "kind": label}
                )
    return tasks


def distill(*args: str) -> str:
    done = subprocess.run([*DISTILL, *args], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 2, 3):
        raise SystemExit(f"distill {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-logs", type=Path, default=REPO.parent / "shared" / "real-logs")
    parser.add_argument("--replay", action="store_true", help="also run eval replay (slow)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/real-tasks.md")
    args = parser.parse_args(argv)
    real = args.real_logs / "mini-swe-agent"
    with tempfile.TemporaryDirectory(prefix="distill-real-tasks-") as work:
        home = Path(work) / "home"
        (home / "runs").mkdir(parents=True)
        (home / "runs" / "trajs").symlink_to(real / "trajs")
        (home / "runs" / "logs").symlink_to(real / "logs")
        (home / "distill.toml").write_text(TOML)
        distill("run-all", "--home", str(home), "--recorded-at", "2026-01-01T00:00:00Z")
        tasks_file = Path(work) / "tasks.jsonl"
        tasks_file.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in tasks_for(real)))
        report = distill("eval", "retrieval", "--tasks", str(tasks_file), "--home", str(home))
        if args.replay:
            report += "\n" + distill(
                "eval", "replay", "--tasks", str(tasks_file), "--home", str(home)
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
