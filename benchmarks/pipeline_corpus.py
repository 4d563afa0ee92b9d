"""The pipeline benchmark's synthetic corpus: nine streams of agent-log rows, two shapes.

``short`` (the original benchmark): rows of 300–800 bytes, 0.4 % of lines per skip kind (2.8 %
garbage), 0.5 % duplicate ids, ~2,000 recurring task ids. ``long`` (realistic agent-log size):
each row's text field 0.3–3 KB on top of its other fields, 0.14 % per skip kind (~1 % garbage),
1 % duplicate ids, about five attempts per task (the task pool is a fifth of the rows). Both are
seeded: the same arguments write the same bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

MAX_LINE_BYTES = 4096  # written to the synthetic home's distill.toml, so oversized lines stay small


@dataclass(frozen=True)
class Shape:
    """How the rows of a corpus look: sizes, planted trouble, tasks."""

    name: str
    row_bytes: tuple[int, int]  # the whole row (short) or its text field alone (long)
    whole_row: bool
    garbage_rate: float  # per skip kind
    duplicate_rate: float  # a native id seen earlier in the stream → duplicate_id at export
    rows_per_task: int | None  # None: the fixed pool of TASK_POOL task ids
    empty_rate: float = 0.003  # empty response → empty_content at export
    blank_rate: float = 0.002  # blank lines: ignored by collect, not records

    def tasks(self, rows: int) -> int:
        return TASK_POOL if self.rows_per_task is None else max(200, rows // self.rows_per_task)

    def describe(self) -> str:
        low, high = self.row_bytes
        size = f"{'rows' if self.whole_row else 'text fields'} of {low}–{high} bytes"
        tasks = f"~{self.rows_per_task} rows/task" if self.rows_per_task else "~2,000 task ids"
        garbage, dup = self.garbage_rate * len(SKIP_KINDS), self.duplicate_rate
        return f"{self.name}: {size}, {garbage:.1%} garbage, {dup:.1%} duplicate ids, {tasks}"


STREAM_WEIGHTS = {
    "scrum_reviews": 20,
    "audits": 12,
    "auto_apply": 12,
    "contract_analyses": 8,
    "observer_reviews": 12,
    "distilled_facts": 8,
    "outcomes": 10,
    "mode_experiments": 10,
    "replay_runs": 8,
}
ID_FIELD = {
    "scrum_reviews": ("review_id", "reviewed_at", "rev"),
    "audits": ("audit_id", "created_at", "aud"),
    "auto_apply": ("apply_id", "applied_at", "app"),
    "contract_analyses": ("analysis_id", "created_at", "ca"),
    "observer_reviews": ("observation_id", "created_at", "obs"),
    "distilled_facts": ("fact_id", "created_at", "fact"),
    "outcomes": ("outcome_id", "created_at", "out"),
    "mode_experiments": ("experiment_id", "created_at", "exp"),
    "replay_runs": ("run_id", "created_at", "run"),
}
TEXT_FIELD = {  # the field padded to reach the row's target size
    "scrum_reviews": "review",
    "audits": "finding",
    "auto_apply": "patch",
    "contract_analyses": "analysis",
    "observer_reviews": "response",
    "distilled_facts": "fact",
    "outcomes": "summary",
    "mode_experiments": "output",
    "replay_runs": "final_answer",
}
SKIP_KINDS = (
    "invalid_json",
    "not_an_object",
    "invalid_utf8",
    "line_too_long",
    "missing_id",
    "missing_timestamp",
    "invalid_timestamp",
)
TASK_POOL = 2000
FACT_ONLY_TASKS = 50  # tasks only facts cite: their facts stay needs_human_review
SHAPES = {
    "short": Shape("short", (300, 800), True, garbage_rate=0.004, duplicate_rate=0.005,
                   rows_per_task=None),
    "long": Shape("long", (300, 3000), False, garbage_rate=0.0014, duplicate_rate=0.01,
                  rows_per_task=5),
}  # fmt: skip

_WORDS = (
    "cache retry handler request response timeout token budget schema migration index query "
    "latency worker queue shard replica lock mutex race deadlock config flag rollout canary "
    "metric alert trace span log buffer stream batch commit revert patch diff build test "
    "fixture mock stub coverage lint type error warning panic crash leak memory cpu disk "
    "network socket header payload parser encoder decoder validator serializer adapter client "
    "server endpoint route middleware session cookie auth permission role tenant quota limit "
    "the a an of to in for with on when after before because while unless this that it"
).split()
_VERBS = "fixes adds removes renames guards wraps caches retries validates logs splits".split()
_STEP_VERBS = ("Verify", "Check", "Assert", "Ensure", "Confirm", "verify", "check")
_BULLETS = ("- ", "* ", "1. ", "2) ", "", "[ ] ")
_MODELS = ("gpt-4o", "claude-3-5-sonnet", "qwen2.5-coder-32b", "llama-3.1-70b", "gemma-3-270m")


class Synth:
    """Deterministic text and field generators (one seeded RNG)."""

    def __init__(self, seed: int, tasks: int = TASK_POOL) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.paths = [
            f"{rng.choice(['src', 'lib', 'app', 'pkg', 'services'])}/"
            f"{rng.choice(_WORDS[:60])}/{rng.choice(_WORDS[:60])}_{i}."
            f"{rng.choice(['py', 'ts', 'go', 'rs', 'sql', 'yaml', 'md'])}"
            for i in range(500)
        ]
        self.sentences = [self._sentence() for _ in range(4000)]
        self.steps = [
            f"{rng.choice(_BULLETS)}{rng.choice(_STEP_VERBS)} {self._sentence(4, 10)}"
            for _ in range(800)
        ]
        self.tasks = [f"T-{i:06d}" if tasks > 99_999 else f"T-{i:05d}" for i in range(tasks)]
        self.base_time = datetime(2025, 1, 1, tzinfo=UTC)

    def _sentence(self, low: int = 6, high: int = 18) -> str:
        rng = self.rng
        words = rng.choices(_WORDS, k=rng.randint(low, high))
        roll = rng.random()
        if roll < 0.25:
            words.insert(rng.randint(1, len(words)), rng.choice(self.paths))
        elif roll < 0.30:
            words.insert(rng.randint(1, len(words)), f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}")
        elif roll < 0.33:
            words.insert(rng.randint(1, len(words)), "e.g.")
        return " ".join(words).capitalize() + "."

    def text(self, size: int) -> str:
        """About ``size`` characters of multi-line agent prose with some validation steps."""
        rng = self.rng
        parts: list[str] = []
        total = 0
        while total < size:
            piece = rng.choice(self.steps) if rng.random() < 0.15 else rng.choice(self.sentences)
            parts.append(piece)
            total += len(piece) + 1
        joined = "".join(p + ("\n" if rng.random() < 0.4 else " ") for p in parts)
        cut = joined[:size]
        return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip()  # at a word boundary

    def short(self, low: int = 4, high: int = 10) -> str:
        return " ".join(self.rng.choices(_WORDS, k=self.rng.randint(low, high))).capitalize()

    def time(self) -> str:
        """ISO-8601 in the shapes agents write: Z, offsets, naive, with or without micros."""
        rng = self.rng
        moment = self.base_time + timedelta(seconds=rng.randrange(365 * 86400))
        roll = rng.random()
        if roll < 0.55:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if roll < 0.75:
            offset = timedelta(hours=rng.choice([-7, -5, 1, 2, 5.5, 9]))
            return moment.astimezone(timezone(offset)).isoformat()
        if roll < 0.90:
            return (moment + timedelta(microseconds=rng.randrange(1_000_000))).isoformat()
        return moment.replace(tzinfo=None).isoformat()

    def task(self) -> str:
        return self.tasks[self.rng.randrange(len(self.tasks) - FACT_ONLY_TASKS)]


def _pick(rng: random.Random, weighted: dict[Any, float]) -> Any:
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


def base_row(stream: str, synth: Synth) -> dict[str, Any]:
    """One valid row of ``stream`` without its id, time or padded text field."""
    rng = synth.rng
    task = synth.task()
    extra = {"agent": f"agent-{rng.randrange(40)}", "session": f"s-{rng.randrange(10**6):06d}"}
    if stream == "scrum_reviews":
        row: dict[str, Any] = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "model": rng.choice(_MODELS),
            "attempts": rng.choice([1, 1, 1, 2, 3]),
        }
        if rng.random() < 0.85:
            row["prompt"] = f"Review {row['file']}: {synth.short()}"
        verdict = _pick(rng, {"accepted": 45, "rejected": 25, None: 30})
        if verdict:
            row["verdict"] = verdict
        elif rng.random() < 0.7:
            row["markers"] = [rng.choice(["ACCEPT", "PARTIAL", "REJECT"])]
        if rng.random() < 0.1:
            row["tree_split_fired"] = True  # shards filled in by fill_text
    elif stream == "audits":
        row = {
            "task_id": task,
            "phase": rng.choice(["design", "build", "release", "post-mortem"]),
            "topic": f"Audit {synth.short(3, 6).lower()}",
            "severity": _pick(
                rng, {"info": 20, "low": 20, "medium": 25, "high": 20, "critical": 10, "meh": 5}
            ),
            "evidence": synth.short(6, 14),
            "files": rng.sample(synth.paths, rng.randint(0, 3)),
        }
    elif stream == "auto_apply":
        row = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "instruction": f"{rng.choice(_VERBS).capitalize()} {synth.short(3, 8).lower()}",
            "outcome": _pick(
                rng,
                {"committed": 50, "build_red_reverted": 20, "tests_failed": 20, "skipped": 10},
            ),
        }
    elif stream == "contract_analyses":
        row = {
            "task_id": task,
            "contract": f"contracts/{rng.choice(_WORDS[:40])}.sol",
            "verdict": _pick(rng, {"accept": 50, "reject": 35, "unclear": 15}),
        }
        if rng.random() < 0.8:
            row["question"] = f"Is {synth.short(3, 7).lower()} safe?"
    elif stream == "observer_reviews":
        row = {
            "task_id": task,
            "file": rng.choice(synth.paths),
            "prompt": f"Observe {synth.short(3, 8).lower()}",
            "notes": synth.short(3, 10),
        }
        verdict = _pick(rng, {"accept": 55, "reject": 35, None: 10})
        if verdict:
            row["verdict"] = verdict
    elif stream == "distilled_facts":
        if rng.random() < 0.1:
            task = synth.tasks[len(synth.tasks) - 1 - rng.randrange(FACT_ONLY_TASKS)]
        row = {"task_id": task, "origin": rng.choice(["scrum", "audit", "observer", "human"])}
    elif stream == "outcomes":
        row = {
            "task_id": task,
            "outcome": _pick(rng, {"success": 55, "failure": 35, "abandoned": 10}),
        }
    elif stream == "mode_experiments":
        row = {
            "task_id": task,
            "mode": rng.choice(["plan", "act", "reflect", "tree"]),
            "prompt": f"Try {synth.short(3, 8).lower()}",
        }
        if rng.random() < 0.9:
            row["validation_results"] = {
                "grounded_fraction": round(rng.random(), 3),
                "cited": rng.randint(0, 8),
            }
    else:  # replay_runs: another replay tool's rows (no schema tag: they are not replay_run.v1)
        row = {
            "task_id": task,
            "task": f"{rng.choice(_VERBS).capitalize()} {synth.short(4, 9).lower()}",
            "task_hash": f"{rng.getrandbits(64):016x}",
            "verdict": _pick(rng, {"passed": 55, "failed": 35, "pending": 10}),
            "escalated": rng.random() < 0.15,
            "hits": [f"scrum_reviews:rev-{rng.randrange(10**7):08d}" for _ in range(2)],
        }
    row.update(extra)
    return row


def fill_text(stream: str, row: dict[str, Any], synth: Synth, target: int) -> None:
    """Pad the stream's main text field so the serialised row is about ``target`` bytes."""
    name = TEXT_FIELD[stream]
    row[name] = ""
    if stream == "scrum_reviews" and row.get("tree_split_fired"):
        row["shards"] = []
    need = max(40, target - len(orjson.dumps(row)))
    text = synth.text(need)
    if stream == "scrum_reviews" and row.get("tree_split_fired"):
        pieces = [p for p in text.split("\n") if p.strip()] or [text]
        shards = [{"index": i, "text": p} for i, p in enumerate(pieces[:4])]
        synth.rng.shuffle(shards)
        row["shards"] = shards
        row[name] = pieces[0][:60]  # the un-assembled review is a stub
    else:
        row[name] = text


@dataclass
class GenStats:
    lines: int = 0
    bytes: int = 0
    by_stream: Counter[str] = field(default_factory=Counter)
    garbage: Counter[str] = field(default_factory=Counter)


def generate(
    home: Path,
    rows: int,
    seed: int,
    progress: Callable[[str], None],
    shape: Shape = SHAPES["short"],
) -> GenStats:
    """Write ``rows`` lines (records, garbage and blanks) across the nine streams of ``home``."""
    kb = home / "data" / "_kb"
    kb.mkdir(parents=True, exist_ok=True)
    (home / "distill.toml").write_text(f"[collect]\nmax_line_bytes = {MAX_LINE_BYTES}\n")
    synth = Synth(seed, shape.tasks(rows))
    rng = synth.rng
    streams = list(STREAM_WEIGHTS)
    weights = list(STREAM_WEIGHTS.values())
    handles = {name: open(kb / f"{name}.jsonl", "wb") for name in streams}  # noqa: SIM115
    counters = dict.fromkeys(streams, 0)
    recent: dict[str, list[str]] = {name: [] for name in streams}
    stats = GenStats()
    try:
        for i in range(rows):
            stream = rng.choices(streams, weights)[0]
            line = _line(stream, synth, shape, counters, recent, stats)
            handles[stream].write(line + b"\n")
            stats.lines += 1
            stats.bytes += len(line) + 1
            stats.by_stream[stream] += 1
            if (i + 1) % 100_000 == 0:
                progress(f"generated {i + 1:,} / {rows:,} lines")
    finally:
        for handle in handles.values():
            handle.close()
    return stats


def _line(
    stream: str,
    synth: Synth,
    shape: Shape,
    counters: dict[str, int],
    recent: dict[str, list[str]],
    stats: GenStats,
) -> bytes:
    rng = synth.rng
    id_field, time_field, prefix = ID_FIELD[stream]
    roll = rng.random()
    if roll < shape.blank_rate:
        stats.garbage["blank"] += 1
        return b""
    roll -= shape.blank_rate
    kind = None
    if roll < shape.garbage_rate * len(SKIP_KINDS):
        kind = SKIP_KINDS[int(roll / shape.garbage_rate)]
        stats.garbage[kind] += 1
    if kind == "not_an_object":
        return rng.choice([b'["not", "an", "object"]', b'"a bare string"', b"42", b"null"])
    counters[stream] += 1
    native = f"{prefix}-{counters[stream]:08d}"
    if kind is None and rng.random() < shape.duplicate_rate and recent[stream]:
        native = rng.choice(recent[stream])  # an agent that wrote the same row twice
        stats.garbage["duplicate_id"] += 1
    else:
        recent[stream].append(native)
        if len(recent[stream]) > 64:
            recent[stream].pop(0)
    row = {id_field: native, time_field: synth.time(), **base_row(stream, synth)}
    target = rng.randint(*shape.row_bytes)
    if not shape.whole_row:  # the text field's size: on top of the row's other fields
        target += len(orjson.dumps({**row, TEXT_FIELD[stream]: ""}))
    if kind == "line_too_long":
        target = MAX_LINE_BYTES + rng.randint(200, 2000)
    fill_text(stream, row, synth, target)
    if kind is None and rng.random() < shape.empty_rate:
        row[TEXT_FIELD[stream]] = "   "
        row.pop("shards", None)
        row.pop("evidence", None)
        stats.garbage["empty_response"] += 1
    if kind == "missing_id":
        del row[id_field]
    elif kind == "missing_timestamp":
        if rng.random() < 0.5:
            del row[time_field]
        else:
            row[time_field] = ""
    elif kind == "invalid_timestamp":
        row[time_field] = rng.choice(["yesterday", "2025-13-45T99:00:00Z", "1700000000"])
    line = orjson.dumps(row)
    if kind == "invalid_json":
        return line[: rng.randint(10, len(line) - 5)]  # a torn write
    if kind == "invalid_utf8":
        cut = line.index(b'"', len(line) // 2)  # inside some string value: corrupt its bytes
        return line[: cut - 1] + b"\xff\xfe" + line[cut - 1 :]
    return line
