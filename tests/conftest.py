"""Shared fixtures. DISTILL_HOME points at a temp folder: no test touches real state."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from distill.config import load_config
from distill.home import Home
from distill.index import PlaybookStore, Retriever
from distill.replay import ReplayOptions, replay
from distill.runs import RunOptions, run_all
from distill.serve import ServeState
from distill.stages import StageContext, StageFlags, StageReport, pipeline

from .helpers.answers import TASK
from .helpers.models import PacedModel
from .helpers.paths import FIXTURES as FIXTURES  # test modules import these from here
from .helpers.paths import RECORDED_AT as RECORDED_AT
from .helpers.paths import REPO as REPO
from .helpers.replay import SampleIndex
from .helpers.serve import make_state, running


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_HOME", str(tmp_path_factory.mktemp("distill-home")))
    monkeypatch.delenv("DISTILL_DEBUG", raising=False)
    # a model file written on first use goes here, never into the user's ~/.cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """An empty home with data/_kb/ in place."""
    (tmp_path / "data" / "_kb").mkdir(parents=True)
    return Home(tmp_path.resolve())


def write_stream(home: Home, stream: str, rows: Iterable[dict[str, Any] | bytes | str]) -> Path:
    """Write a stream file; dicts become JSON lines, bytes/str are written as raw lines."""
    path = home.kb_dir / f"{stream}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for row in rows:
            if isinstance(row, dict):
                handle.write(orjson.dumps(row) + b"\n")
            elif isinstance(row, str):
                handle.write(row.encode() + b"\n")
            else:
                handle.write(row + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def run_pipeline(
    home: Home, recorded_at: str = RECORDED_AT, repo_root: Path | None = None, **flags: bool
) -> dict[str, StageReport]:
    """collect → score → export rag/sft/preference on ``home`` (the registry's stages before
    the index); each report keyed by its stage's name, an export's by the export's."""
    context = StageContext(
        home,
        load_config(home.config_path),
        recorded_at,
        repo_root,
        flags=StageFlags(
            include_review=flags.get("include_review", False),
            include_partial=flags.get("include_partial", False),
        ),
    )
    return {stage.export or stage.name: stage.run(context) for stage in pipeline(index=False)}


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The sample corpus after run-all (hashing embedder) and one logged dry-run replay.

    Built once per test run and shared: a test that changes anything copies it first
    (``copy_home``); one that only reads (``sample_index``) may use it where it is.
    """
    root = tmp_path_factory.mktemp("pristine") / "home"
    shutil.copytree(FIXTURES / "sample" / "data", root / "data")
    home = Home(root.resolve())
    options = RunOptions(
        recorded_at=RECORDED_AT, repo_root=FIXTURES / "sample" / "repo", embedder="hash-384"
    )
    assert run_all(home, load_config(home.config_path), options).summary.passed
    replay(  # one line of distill's own in the replay log
        home,
        "make the payments webhook idempotent",
        ReplayOptions(dry_run=True, log=True),  # a dry run logs only when asked to
        retriever=lambda: Retriever(PlaybookStore(str(home.index_dir))),
        local=lambda: pytest.fail("a dry run loads no model"),
    )
    return home


def copy_home(source: Home, folder: Path) -> Home:
    shutil.copytree(source.root, folder / "home")
    return Home((folder / "home").resolve())


@pytest.fixture(scope="session")
def sample_index(pristine: Home) -> SampleIndex:
    """The index of ``pristine`` (read-only) and its hybrid top 8 for ``TASK``."""
    uri = str(pristine.index_dir)
    retriever = Retriever(PlaybookStore(uri))
    return SampleIndex(uri, retriever.search(TASK, top_k=8), retriever.version)


@pytest.fixture(scope="module")
def model() -> PacedModel:
    """The model a module's ``distill serve`` (``url``) answers with."""
    return PacedModel()


@pytest.fixture(scope="module")
def state(
    tmp_path_factory: pytest.TempPathFactory, sample_index: SampleIndex, model: PacedModel
) -> ServeState:
    """What a module's ``distill serve`` serves: a fresh home over ``sample_index``."""
    return make_state(tmp_path_factory.mktemp("serve-home"), sample_index, model)


@pytest.fixture(scope="module")
def url(state: ServeState) -> Iterator[str]:
    """The base URL of a module's ``distill serve``, running in a thread."""
    with running(state) as base:
        yield base
