"""--repo-root: one checkout or one per repository, and the hallucinated-path check's order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from distill.config import load_config
from distill.home import Home
from distill.replay.gate import GatePolicy, run_gate
from distill.repos import RepoRoots, inside, repo_key
from distill.schemas import Bundle
from distill.stages.firewall import repo_fields

from .conftest import read_jsonl, run_pipeline, write_stream

T0 = "2025-02-01T09:00:00Z"


@dataclass
class Row:
    """What RepoRoots reads from a record."""

    metadata: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    stream: str = "swe"


def checkout(root: Path, folder: str, *files: str, git: bool = False) -> Path:
    repo = root / folder
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("")
    repo.mkdir(parents=True, exist_ok=True)
    if git:
        (repo / ".git").mkdir()
    return repo


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("django/django", ("django", "django")),
        ("  psf/requests ", ("psf", "requests")),
        ("requests", ("requests",)),
        ("https://github.com/psf/requests.git", ("psf", "requests")),
        ("git@github.com:psf/requests.git", None),  # "github.com:psf" is not an owner
        ("../etc", None),
        ("..", None),
        ("a b/c", None),
        ("", None),
        (42, None),
    ],
)
def test_repo_key(value: object, key: tuple[str, ...] | None) -> None:
    assert repo_key(value) == key


@pytest.mark.parametrize("git", [True, False], ids=["clone", "no-git"])
@pytest.mark.parametrize("layout", ["psf__requests", "psf/requests", "requests"])
def test_each_checkout_layout_is_found(tmp_path: Path, layout: str, git: bool) -> None:
    repo = checkout(tmp_path, layout, "requests/api.py", git=git)
    roots = RepoRoots(tmp_path)
    row = Row({"repo": "psf/requests"})
    assert roots.checkout(row) == repo
    assert roots.missing(["requests/api.py", "./requests/api.py"], row) == []
    assert roots.missing(["requests/ghost.py"], row) == ["requests/ghost.py"]


def test_layouts_are_tried_in_order(tmp_path: Path) -> None:
    first = checkout(tmp_path, "psf__requests")
    checkout(tmp_path, "psf/requests")
    checkout(tmp_path, "requests")
    assert RepoRoots(tmp_path).checkout(Row({"repo": "psf/requests"})) == first


def test_a_checkout_holding_git_wins_over_a_package_folder(tmp_path: Path) -> None:
    """`<root>/django/django` is the package folder of the `<root>/django` clone."""
    clone = checkout(tmp_path, "django", "django/db/models.py", git=True)
    roots = RepoRoots(tmp_path)
    assert roots.checkout(Row({"repo": "django/django"})) == clone
    assert roots.missing(["django/db/models.py"], Row({"repo": "django/django"})) == []


def test_a_root_holding_git_is_one_checkout_for_every_row(tmp_path: Path) -> None:
    root = checkout(tmp_path, "myrepo", "src/app.py", "other/x.py", git=True)
    checkout(root, "other")  # a folder named like a repository: not a checkout of its own
    roots = RepoRoots(root)
    for row in (Row(), Row({"repo": "someone/other"}), Row({"repo": "nowhere/none"})):
        assert roots.missing(["src/app.py", "./other/x.py"], row) == []
    assert not roots.no_checkout


def test_a_row_naming_no_repository_is_checked_against_the_root(tmp_path: Path) -> None:
    checkout(tmp_path, ".", "hello.sh")
    roots = RepoRoots(tmp_path)
    assert roots.missing(["./hello.sh", "hello.sh", "ghost.sh"], Row()) == ["ghost.sh"]
    assert roots.missing(["hello.sh"], Row({"repo": "  "})) == []


@pytest.mark.parametrize("value", ["nobody/nothing", "../..", "a b"])
def test_a_repository_without_a_checkout_is_not_checked_but_counted(
    tmp_path: Path, value: str
) -> None:
    checkout(tmp_path, "django__django")
    roots = RepoRoots(tmp_path)
    assert roots.missing(["x.py"], Row({"repo": value})) is None
    assert roots.missing(["y.py"], Row({"repo": value})) is None
    assert sum(roots.no_checkout.values()) == 2 and len(roots.no_checkout) == 1


def test_the_repo_field_is_per_stream_and_falls_back_to_signals(tmp_path: Path) -> None:
    repo = checkout(tmp_path, "psf__requests", "requests/api.py")
    roots = RepoRoots(tmp_path, {"swe": "repository"})
    assert roots.checkout(Row({"repository": "psf/requests"})) == repo
    assert roots.checkout(Row(signals={"repository": "psf/requests"})) == repo
    assert roots.checkout(Row({"repo": "psf/requests"})) == tmp_path  # not this stream's field
    assert roots.checkout(Row({"repo": "psf/requests"}, stream="other")) == repo


def test_repo_fields_reads_the_per_source_setting(tmp_path: Path) -> None:
    toml = tmp_path / "distill.toml"
    toml.write_text(
        '[sources.swe]\nformat = "mini_swe_agent"\nrepo_field = "repository"\n'
        '[sources.plain]\nid_field = "id"\ntime_field = "at"\ninstruction_field = "q"\n'
        'response_field = "a"\nrepo_field = "repo"\n'
        '[sources.other]\nid_field = "id"\ntime_field = "at"\ninstruction_field = "q"\n'
        'response_field = "a"\n'
    )
    assert repo_fields(load_config(toml)) == {"swe": "repository"}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("a.py", True),
        ("./a.py", True),
        ("sub/./b.py", True),
        ("sub/../a.py", True),
        ("../outside.py", False),
        ("sub/../../outside.py", False),
        ("/etc/hostname", False),
        ("link/outside.py", False),  # a symlink pointing out of the checkout
    ],
)
def test_inside_never_leaves_the_root(tmp_path: Path, path: str, found: bool) -> None:
    root = checkout(tmp_path, "repo", "a.py", "sub/b.py")
    (tmp_path / "outside.py").write_text("")
    (root / "link").symlink_to(tmp_path)
    assert inside(root.resolve(), path) is found


# --- through the exports ----------------------------------------------------------------------


def swe(native: str, repo: str | None, verdict: str, path: str, task: str) -> dict[str, Any]:
    """An observer_reviews row shaped like a SWE-bench trajectory: `repo`, `base_commit`."""
    row: dict[str, Any] = {
        "observation_id": native,
        "created_at": T0,
        "task_id": task,
        "prompt": f"Resolve {task}",
        "response": f"Edited {path}; verify the tests pass.",
        "verdict": verdict,
        "base_commit": "0" * 40,
    }
    if repo is not None:
        row["repo"] = repo
    return row


@pytest.fixture
def multi_root(tmp_path: Path) -> Path:
    root = tmp_path / "repos"
    checkout(root, "django__django", "django/db/models/query.py", git=True)
    checkout(root, "psf/requests", "requests/api.py", git=True)
    return root


def test_a_multi_repository_root_checks_each_row_in_its_own_checkout(
    home: Home, multi_root: Path
) -> None:
    write_stream(
        home,
        "observer_reviews",
        [
            swe("D-ok", "django/django", "accept", "django/db/models/query.py", "T-1"),
            swe("D-dot", "django/django", "accept", "./django/db/models/query.py", "T-2"),
            swe("R-ok", "psf/requests", "accept", "requests/api.py", "T-3"),
            swe("R-cross", "psf/requests", "accept", "django/db/models/query.py", "T-4"),
            swe("D-ghost", "django/django", "accept", "django/ghost.py", "T-5"),
            swe("S-none", "sympy/sympy", "accept", "sympy/core/basic.py", "T-6"),
            swe("S-none2", "sympy/sympy", "accept", "sympy/core/expr.py", "T-7"),
            swe("D-rejected", "django/django", "reject", "django/ghost.py", "T-1"),
        ],
    )
    reports = run_pipeline(home, repo_root=multi_root)
    rag = {row["id"].split(":")[1] for row in read_jsonl(home.export_path("rag"))}
    assert rag == {"D-ok", "D-dot", "R-ok", "S-none", "S-none2"}
    reasons = {q["record_id"].split(":")[1]: q for q in read_jsonl(home.quarantine_path("rag"))}
    assert reasons["R-cross"]["reason"] == "hallucinated_file_path"
    assert reasons["R-cross"]["detail"] == (
        "not in the checkout psf/requests: django/db/models/query.py"
    )
    assert reasons["D-ghost"]["detail"] == "not in the checkout django__django: django/ghost.py"
    assert reasons["D-rejected"]["reason"] == "unsafe_rag_category"  # its real reason
    for export in ("rag", "sft", "preference"):
        report = reports[export]
        assert report.passed and report.checks["hallucinated_file_path"] == "enabled"
        assert report.extra["path_check_skipped"] == {"sympy/sympy": 2}
        assert any(
            "no checkout for repo sympy/sympy" in w and "skipped for 2 row(s)" in w
            for w in report.warnings
        )


@pytest.mark.parametrize(
    ("verdict", "reasons"),
    [
        ("reject", {"rag": "unsafe_rag_category", "sft": "unsafe_sft_category"}),
        ("maybe", {"rag": "category_disallowed", "sft": "unsafe_sft_category"}),
    ],
)
def test_the_category_check_comes_before_the_path_check(
    home: Home, tmp_path: Path, verdict: str, reasons: dict[str, str]
) -> None:
    repo = checkout(tmp_path, "repo", "src/real.py")
    write_stream(
        home,
        "observer_reviews",
        [
            swe("ok", None, "accept", "src/real.py", "T-1"),
            swe("bad", None, verdict, "src/ghost.py", "T-1"),
        ],
    )
    run_pipeline(home, repo_root=repo)
    for export, reason in reasons.items():
        by_id = {q["record_id"]: q["reason"] for q in read_jsonl(home.quarantine_path(export))}
        assert by_id["observer_reviews:bad"] == reason
    pref = {
        q["record_id"]: q["reason"]
        for q in read_jsonl(home.quarantine_path("preference"))
        if q["pair"] is None
    }
    expected = "hallucinated_file_path" if verdict == "reject" else "category_disallowed"
    assert pref["observer_reviews:bad"] == expected  # a pair's rejected side must exist too


def test_dot_slash_paths_pass_the_check(home: Home, tmp_path: Path) -> None:
    repo = checkout(tmp_path, "session", "hello.sh")
    write_stream(home, "observer_reviews", [swe("cc", None, "accept", "./hello.sh", "T-1")])
    reports = run_pipeline(home, repo_root=repo)
    assert reports["rag"].records_out == 1
    [row] = read_jsonl(home.export_path("rag"))
    assert row["file_paths"] == ["hello.sh"]


# --- the replay gate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ("Run ./hello.sh after editing scripts/./build.sh.", True),
        ("Run hello.sh after editing scripts/build.sh.", True),
        ("Run ../outside.sh first.", False),  # exists, but outside the repo root
        ("Run ghost.sh first.", False),
    ],
)
def test_the_gate_normalises_paths_and_stays_in_the_root(
    tmp_path: Path, answer: str, passed: bool
) -> None:
    repo = checkout(tmp_path, "repo", "hello.sh")
    (tmp_path / "outside.sh").write_text("")
    bundle = Bundle(
        task="t",
        exemplars=[],
        warnings=[],
        validation_steps=[],
        messages=[],
        prompt="edit scripts/build.sh",
        budget=100,
        budget_unit="chars",
        used=0,
    )
    report = run_gate(answer, bundle, [], GatePolicy(repo_root=repo))
    [check] = [c for c in report.checks if c.name == "no_unknown_file_paths"]
    assert check.passed is passed, check.detail
