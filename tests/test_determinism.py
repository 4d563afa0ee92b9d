"""Same inputs + same recorded_at ⇒ identical bytes; another recorded_at changes only times."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from distill.home import Home
from distill.runs.acceptance import DEFAULT_FIXTURE

from .conftest import FIXTURES, run_pipeline

OUTPUT_DIRS = ("data/evidence", "data/scored-runs", "exports")


def _sample_home(root: Path) -> Home:
    shutil.copytree(DEFAULT_FIXTURE, root)
    # the acceptance fixture adds garbage of every kind to the realistic sample corpus
    for path in (FIXTURES / "sample" / "data" / "_kb").glob("*.jsonl"):
        target = root / "data" / "_kb" / path.name
        target.write_bytes(target.read_bytes() + path.read_bytes())
    return Home(root.resolve())


def _outputs(home: Home) -> dict[str, bytes]:
    files = [home.skips_path]
    for folder in OUTPUT_DIRS:
        files += sorted((home.root / folder).rglob("*.jsonl"))
    return {home.relative(path): path.read_bytes() for path in files}


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "recorded_at"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    homes = [_sample_home(tmp_path / name) for name in ("a", "b")]
    for home in homes:
        run_pipeline(home, "2026-03-01T12:00:00Z", repo_root=home.root / "repo")
    first, second = (_outputs(home) for home in homes)
    assert len(first) >= 20
    assert first == second


def test_another_recorded_at_changes_only_time_fields(tmp_path: Path) -> None:
    homes = [_sample_home(tmp_path / name) for name in ("a", "b")]
    run_pipeline(homes[0], "2026-03-01T12:00:00Z")
    run_pipeline(homes[1], "2027-07-07T07:07:07Z")
    first, second = (_outputs(home) for home in homes)
    assert first.keys() == second.keys()
    changed = [name for name in first if first[name] != second[name]]
    assert changed, "recorded_at must be stamped on the records"
    for name in first:
        parsed = [
            [_without_times(orjson.loads(line)) for line in outputs[name].splitlines()]
            for outputs in (first, second)
        ]
        assert parsed[0] == parsed[1], name


def test_rescoring_unchanged_evidence_is_idempotent(tmp_path: Path) -> None:
    from distill.config import load_config
    from distill.stages import score

    home = _sample_home(tmp_path / "a")
    run_pipeline(home)
    before = {p.name: p.read_bytes() for p in home.scored_dir.glob("*.jsonl")}
    score(home, load_config(home.config_path), recorded_at="2026-01-01T00:00:00Z")
    after = {p.name: p.read_bytes() for p in home.scored_dir.glob("*.jsonl")}
    assert before == after
