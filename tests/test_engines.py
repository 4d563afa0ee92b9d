"""--engine ray writes what the local engine writes: the same files, output hashes and run_hash.

Ray runs as CI runs it: a local 2-CPU Ray, started once for the module's tests (it takes
seconds) and shared by them. The test without Ray (the error a user gets) needs none.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.engine import (
    LOCAL,
    LOCAL_CHUNK_BYTES,
    LOCAL_CHUNK_ITEMS,
    Engine,
    map_groups,
    open_engine,
)
from distill.errors import ValidationFailed
from distill.home import SKIPS_FILE, Home
from distill.index import PlaybookStore
from distill.index.stage import index_export
from distill.runs import RunOptions, RunResult, run_all
from distill.stages import StageContext
from distill.stages.registry import stage_named

from .conftest import FIXTURES, RECORDED_AT, REPO

runner = CliRunner()
REAL_LOGS = REPO.parent / "shared" / "real-logs"


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Engine]:
    """A local 2-CPU Ray for the module; ``open_engine`` joins it instead of starting one."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with open_engine("ray") as engine:
            yield engine
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def small_chunks(ray_engine: Engine) -> Engine:
    """The Ray engine cutting rows into chunks of 7, three chunks a dataset: many chunks, many
    datasets, results arriving out of order, even on a small corpus."""
    from distill.engine.ray_engine import RayEngine

    return RayEngine(None, chunk_items=7, window=3)


def sample_home(folder: Path) -> Home:
    shutil.copytree(FIXTURES / "sample" / "data", folder / "data")
    return Home(folder.resolve())


def messy_home(folder: Path) -> Home:
    """The sample corpus plus what a real log holds: a line that is not JSON, a row with no
    id, a row twice, a row naming a repository with no checkout, a blank line."""
    home = sample_home(folder)
    stream = home.kb_dir / "scrum_reviews.jsonl"
    first = stream.read_bytes().splitlines()[0]
    extra = [
        b"{not json",
        b'{"reviewed_at": "2025-03-01T10:00:00Z", "prompt": "p", "review": "r"}',
        first,
        b"",
        b'{"review_id": "SR-900", "reviewed_at": "2025-03-01T10:00:00Z", "task_id": "T-9", '
        b'"repo": "acme/missing", "file": "src/x.py", "markers": ["ACCEPT"], '
        b'"prompt": "Review src/x.py", "review": "Looks right."}',
    ]
    stream.write_bytes(stream.read_bytes() + b"\n".join(extra) + b"\n")
    return home


def outputs(home: Home) -> dict[str, bytes]:
    """Every file the stages write (evidence, scored runs, skips, exports), by path."""
    found = [home.kb_dir / SKIPS_FILE]
    for folder in (home.evidence_dir, home.scored_dir, home.exports_dir):
        found += sorted(path for path in folder.rglob("*") if path.is_file())
    return {home.relative(path): path.read_bytes() for path in found if path.is_file()}


def run(home: Home, engine: Engine, **options: Any) -> RunResult:
    config = load_config(home.config_path)
    chosen = RunOptions(recorded_at=RECORDED_AT, embedder="hash-384", engine=engine, **options)
    return run_all(home, config, chosen)


def assert_same_run(local: tuple[Home, RunResult], ray: tuple[Home, RunResult]) -> None:
    (local_home, local_run), (ray_home, ray_run) = local, ray
    assert local_run.summary.passed and ray_run.summary.passed
    assert ray_run.summary.run_hash == local_run.summary.run_hash
    hashes = [(receipt.stage, receipt.output_hash) for receipt in local_run.receipts]
    assert [(receipt.stage, receipt.output_hash) for receipt in ray_run.receipts] == hashes
    for mine, theirs in zip(ray_run.receipts, local_run.receipts, strict=True):
        assert (
            mine.counts == theirs.counts and mine.validation.warnings == theirs.validation.warnings
        )
        assert mine.extra.pop("engine")["name"] == "ray"
        assert mine.extra == theirs.extra and "engine" not in theirs.extra
    assert outputs(ray_home) == outputs(local_home)


@pytest.mark.slow
def test_ray_writes_the_local_bytes_on_the_sample_corpus(
    tmp_path: Path, ray_engine: Engine
) -> None:
    repo = FIXTURES / "sample" / "repo"  # the hallucinated-path check runs on the workers too
    local_home, ray_home = sample_home(tmp_path / "local"), sample_home(tmp_path / "ray")
    local = run(local_home, LOCAL, repo_root=repo)
    assert_same_run((local_home, local), (ray_home, run(ray_home, ray_engine, repo_root=repo)))


@pytest.mark.slow
def test_skips_quarantine_and_unchecked_repos_survive_many_small_chunks(
    tmp_path: Path, small_chunks: Engine
) -> None:
    repo = FIXTURES / "sample" / "repo"
    local_home, ray_home = messy_home(tmp_path / "local"), messy_home(tmp_path / "ray")
    local = run(local_home, LOCAL, repo_root=repo, index=False)
    collect = local.receipts[0].counts
    assert collect and collect.skipped == {"invalid_json": 1, "missing_id": 1}
    rag = local.receipts[2]
    assert rag.counts and rag.counts.quarantined["duplicate_id"] == 1
    assert rag.extra["path_check_skipped"] == {"acme/missing": 1}
    ray = run(ray_home, small_chunks, repo_root=repo, index=False)
    assert_same_run((local_home, local), (ray_home, ray))


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_LOGS / "README.md").is_file(), reason=f"no real logs at {REAL_LOGS}")
def test_ray_writes_the_local_bytes_on_the_real_logs(tmp_path: Path, ray_engine: Engine) -> None:
    """Real trajectories and sessions (documents and folded lines, verdict files), read in place."""
    homes = []
    for name in ("local", "ray"):
        root = tmp_path / name
        root.mkdir()
        swe, claude = REAL_LOGS / "mini-swe-agent", REAL_LOGS / "claude-code"
        (root / "distill.toml").write_text(
            f'[sources.swe]\nformat = "mini_swe_agent"\npath = "{swe}/trajs/**/*.traj.json"\n'
            f'verdicts = "{swe}/logs/*/report.json"\n\n'
            f'[sources.claude]\nformat = "claude_code"\npath = "{claude}/**/transcript.jsonl"\n'
        )
        homes.append(Home(root.resolve()))
    local = run(homes[0], LOCAL)
    assert local.summary.stages[2].counts and local.summary.stages[2].counts.records_out == 25
    assert_same_run((homes[0], local), (homes[1], run(homes[1], ray_engine)))


@pytest.mark.slow
def test_a_stage_refused_on_ray_fails_as_it_does_here_and_writes_nothing(
    tmp_path: Path, small_chunks: Engine
) -> None:
    messages = []
    for engine, name in ((LOCAL, "local"), (small_chunks, "ray")):
        home = sample_home(tmp_path / name)
        context = StageContext(home, load_config(home.config_path), RECORDED_AT, engine=engine)
        stage_named("collect").run(context)
        evidence = home.evidence_dir / "audits.jsonl"
        lines = evidence.read_bytes().splitlines()
        lines[20] = b'{"schema": "evidence.v1", "id": "audits:x"}'  # JSON, not evidence.v1
        evidence.write_bytes(b"\n".join(lines) + b"\n")
        with pytest.raises(ValidationFailed) as refused:
            stage_named("score").run(context)
        messages.append(str(refused.value).replace(str(home.root), "<home>"))
        assert not (home.scored_dir / "audits.jsonl").exists()
    assert (
        messages[0]
        == messages[1]
        == "<home>/data/evidence/audits.jsonl:21 is not valid evidence.v1"
    )


def cli(home: Home, *args: str) -> None:
    result = runner.invoke(app, [*args, "--home", str(home.root), "--recorded-at", RECORDED_AT])
    assert result.exit_code == 0, result.stderr


@pytest.mark.slow
def test_every_stage_command_takes_engine_ray(tmp_path: Path, ray_engine: Engine) -> None:
    """collect, score, export all and index build with --engine ray: the local bytes."""
    homes = {name: sample_home(tmp_path / name) for name in ("local", "ray")}
    for name, home in homes.items():
        engine = ["--engine", name]
        cli(home, "collect", *engine)
        cli(home, "score", *engine)
        cli(home, "export", "all", *engine)
        index = ["index", "build", "--home", str(home.root), "--embedder", "hash-384", *engine]
        assert runner.invoke(app, index).exit_code == 0
    assert outputs(homes["ray"]) == outputs(homes["local"])
    tables = [PlaybookStore(str(home.index_dir)).open().to_arrow() for home in homes.values()]
    assert tables[0].sort_by("id").equals(tables[1].sort_by("id"))


def built(home: Home, engine: Engine, embedder: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and the rows (id → row) of an index of ``home``'s playbooks."""
    uri = str(home.index_dir)
    report, _ = index_export(home, uri, engine.embedder(embedder, 0), ann_threshold=100)
    assert report.passed
    store = PlaybookStore(uri)
    manifest = store.require_manifest().model_dump()
    names = sorted(index.name for index in store.open().list_indices())
    assert names == ["text_idx", "vector_idx"]  # FTS, and ANN past the threshold
    return manifest, {row["id"]: row for row in store.open().to_arrow().to_pylist()}


def index_on_both(tmp_path: Path, ray_engine: Engine, embedder: str) -> float:
    """Build the sample's index here and on Ray; the largest difference between vectors."""
    results = []
    for name, engine in (("local", LOCAL), ("ray", ray_engine)):
        home = sample_home(tmp_path / name)
        run(home, LOCAL, index=False)
        results.append(built(home, engine, embedder))
    (manifest, rows), (ray_manifest, ray_rows) = results
    assert ray_manifest == manifest and rows.keys() == ray_rows.keys() and len(rows) == 309
    differences = []
    for key, row in rows.items():
        theirs = ray_rows[key]
        assert {k: v for k, v in row.items() if k != "vector"} == {
            k: v for k, v in theirs.items() if k != "vector"
        }
        differences.append(np.abs(np.array(row["vector"]) - np.array(theirs["vector"])).max())
    return float(max(differences))


@pytest.mark.slow
def test_an_index_built_on_ray_holds_the_local_rows_and_vectors(
    tmp_path: Path, ray_engine: Engine
) -> None:
    assert index_on_both(tmp_path, ray_engine, "hash-384") <= 1e-6


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_minilm_on_ray_actors_embeds_what_it_embeds_here(
    tmp_path: Path, ray_engine: Engine
) -> None:
    """The real model, one load per actor, torch on one thread each: within 1e-6 of here."""
    assert index_on_both(tmp_path, ray_engine, "minilm") <= 1e-6


def test_engine_ray_without_ray_says_what_to_install(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "distill.engine.ray_engine", None)
    result = runner.invoke(app, ["collect", "--engine", "ray", "--home", str(home.root)])
    assert result.exit_code == 1
    assert "--engine ray needs Ray, which is not installed" in result.stderr
    assert "pip install 'distill[ray]'" in result.stderr


def test_the_local_engine_imports_nothing_from_ray(home: Home) -> None:
    (home.kb_dir / "audits.jsonl").write_bytes(
        (FIXTURES / "sample" / "data" / "_kb" / "audits.jsonl").read_bytes()
    )
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from distill.cli import app\n"
        f"args = ['run-all', '--home', {str(home.root)!r}, '--embedder', 'hash-384']\n"
        "assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "[]"


def _sized(calls: list[int], items: list[int]) -> list[tuple[int, int]]:
    """A work function recording how many items each call got."""
    calls.append(len(items))
    return [(item, len(items)) for item in items]


def test_local_map_groups_hands_over_chunks_within_a_group() -> None:
    """Chunks never cross a group's end, nor hold more than the byte budget and one item; the
    results are one per item, in order; a group is read only after the previous one's results
    were taken."""
    calls: list[int] = []
    read: list[str] = []

    def items(name: str, count: int) -> Iterator[int]:
        for item in range(count):
            read.append(name)
            yield item

    n = LOCAL_CHUNK_ITEMS
    groups = map_groups(
        LOCAL, _sized, calls, [items("a", 2 * n + 6), items("b", 3)], weigh=lambda item: 1
    )
    first = next(groups)
    assert [item for item, _ in first] == list(range(2 * n + 6))
    assert "b" not in read
    assert [item for item, _ in next(groups)] == [0, 1, 2]
    assert calls == [n, n, 6, 3]
    calls.clear()
    heavy = [0, LOCAL_CHUNK_BYTES, 0, 0]
    group = next(map_groups(LOCAL, _sized, calls, [range(4)], weigh=lambda item: heavy[item]))
    assert [item for item, _ in group] == [0, 1, 2, 3]
    assert calls == [2, 2]
