"""One writer per home, OS failures as one-line errors with a record, exports as a set,
leftovers removed, file modes kept. Each test reproduces a defect found by trying to break
distill (issue: hardening)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.index import PlaybookStore, make_embedder
from distill.index.maintenance import old_versions
from distill.index.stage import index_export
from distill.lock import HomeBusy, lock_path, read_owner, writer_lock
from distill.runs import RunOptions, run_all
from distill.runs.checks import index_sync_checks
from tests.conftest import FIXTURES, RECORDED_AT, copy_home, read_jsonl

runner = CliRunner()
DISTILL = [sys.executable, "-c", "from distill.cli import main; main()"]


def _sample_home(folder: Path) -> Home:
    shutil.copytree(FIXTURES / "sample" / "data", folder / "data")
    return Home(folder.resolve())


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- one writer at a time -----------------------------------------------------------------------


def test_a_second_writer_with_no_wait_fails_naming_the_holder(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    with writer_lock(home, "run-all"):
        code, _, err = _cli("collect", "--home", str(home.root), "--no-wait")
    assert code == 1
    assert f"pid {os.getpid()}" in err and "run-all" in err
    assert "writer lock" in err and "Traceback" not in err
    assert not (home.evidence_dir).exists()  # it wrote nothing


def test_a_writer_waits_for_the_holder_then_runs(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    with writer_lock(home, "index build"):
        proc = subprocess.Popen(
            [*DISTILL, "collect", "--home", str(home.root), "--recorded-at", RECORDED_AT],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        assert proc.poll() is None, "it must wait while the lock is held"
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for pid" in err and "index build" in err
    assert (home.evidence_dir / "audits.jsonl").is_file()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from pathlib import Path; from distill.home import Home;"
            "from distill.lock import writer_lock\n"
            f"with writer_lock(Home(Path({str(home.root)!r})), 'run-all'):\n"
            "    print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert holder.wait(timeout=30) == -signal.SIGKILL
    owner = read_owner(home)
    assert owner is not None and owner.pid == holder.pid
    assert "no longer running" in owner.describe()
    with writer_lock(home, "collect", wait=False):  # free at once
        assert read_owner(home) is not None
        assert read_owner(home).pid == os.getpid()  # type: ignore[union-attr]
    assert lock_path(home).is_file()  # never removed: see distill.lock


def test_no_wait_raises_home_busy_in_the_library(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    with (
        writer_lock(home, "run-all"),
        pytest.raises(HomeBusy, match="run-all"),
        writer_lock(home, "collect", wait=False),
    ):
        pass
    with (
        writer_lock(home, "run-all"),
        pytest.raises(HomeBusy, match="after waiting"),
        writer_lock(home, "collect", timeout=0.3),
    ):
        pass


@pytest.mark.slow
def test_two_run_alls_at_once_leave_one_consistent_index(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    args = [
        *DISTILL,
        "run-all",
        "--home",
        str(home.root),
        "--recorded-at",
        RECORDED_AT,
        "--embedder",
        "hash-384",
    ]
    procs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [proc.communicate(timeout=300)[1] for proc in procs]
    codes = [proc.returncode for proc in procs]
    assert codes == [0, 0] or sorted(codes) == [0, 1], errs
    if codes == [0, 0]:
        assert any("waiting for" in err for err in errs), "one of them must have waited"
    else:
        assert any("writer lock" in err for err in errs)
    exported = [row["id"] for row in read_jsonl(home.export_path("rag"))]
    indexed = [row["id"] for row in PlaybookStore(str(home.index_dir)).rows(["id"])]
    assert len(indexed) == len(set(indexed)) == len(exported)
    assert set(indexed) == set(exported)


# -- the index: duplicates fail the checks, update repairs them ----------------------------------


def _duplicate_a_row(home: Home) -> None:
    """What two unlocked writers did: one id twice in the published table."""
    store = PlaybookStore(str(home.index_dir))
    table = store.latest_table()
    row = table.to_arrow().slice(0, 1)
    table.add(row)
    manifest = store.require_manifest()
    store.write_manifest(manifest.model_copy(update={"version": table.version}))


def test_audit_and_index_stage_fail_on_a_duplicated_id_and_update_repairs_it(
    pristine: Home, tmp_path: Path
) -> None:
    home = copy_home(pristine, tmp_path)
    _duplicate_a_row(home)
    check = next(index_sync_checks(home, str(home.index_dir)))
    assert not check.passed and "twice" in check.detail
    embedder = make_embedder("hash-384")
    report, result = index_export(home, str(home.index_dir), embedder)  # update
    assert report.passed, report.errors
    assert "repaired" in result.extra
    assert next(index_sync_checks(home, str(home.index_dir))).passed


def test_index_update_exits_1_when_its_checks_fail(
    pristine: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = copy_home(pristine, tmp_path)
    monkeypatch.setattr(
        "distill.index.stage.index_mismatch", lambda indexed, exported: "injected mismatch"
    )
    code, _, err = _cli("index", "update", "--home", str(home.root), "--embedder", "hash-384")
    assert code == 1 and "injected mismatch" in err


# -- OS failures: one line, a record, exports as a set ------------------------------------------


def test_a_stream_that_is_a_folder_is_a_warning_not_a_traceback(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    (home.kb_dir / "x.jsonl").mkdir()
    code, _, err = _cli("collect", "--home", str(home.root), "--recorded-at", RECORDED_AT)
    assert code == 0 and "x.jsonl: not a file" in err
    code, out, err = _cli("recon", "--home", str(home.root), "--json")
    assert code == 0 and "x" not in [s["stream"] for s in orjson.loads(out)]


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOSPC, "free some disk space"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permissions"),
    ],
)
def test_an_os_error_is_one_line_with_the_file_and_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    home = _sample_home(tmp_path)

    def refuse(fd: int) -> None:  # fault injection: the OS refuses the write
        raise OSError(code, os.strerror(code), str(home.evidence_dir / "audits.jsonl"))

    monkeypatch.setattr("distill.jsonio.os.fsync", refuse)
    exit_code, _, err = _cli("collect", "--home", str(home.root), "--recorded-at", RECORDED_AT)
    assert exit_code == 1
    assert "Traceback" not in err
    assert "audits.jsonl" in err and os.strerror(code) in err and hint in err
    assert not list(home.evidence_dir.glob(".*.tmp"))  # the temp file went with the failure


def _first_run(home: Home) -> dict[str, bytes]:
    config = load_config(home.config_path)
    options = RunOptions(recorded_at=RECORDED_AT, index=False)
    assert run_all(home, config, options).summary.passed
    return {name: home.export_path(name).read_bytes() for name in ("rag", "sft", "preference")}


def _change_inputs(home: Home) -> None:
    """A new accepted audit, so every export of the next run differs from this one's."""
    row = {
        "audit_id": "AUD-NEW",
        "created_at": "2026-02-01T00:00:00Z",
        "task_id": "T-NEW",
        "topic": "Check the retry budget of the ledger sync",
        "severity": "low",
        "finding": "Verify the retry budget is capped at five attempts.",
    }
    with open(home.kb_dir / "audits.jsonl", "ab") as handle:
        handle.write(orjson.dumps(row) + b"\n")
    reject = {**row, "audit_id": "AUD-NEW-2", "severity": "high", "finding": "Retries loop."}
    with open(home.kb_dir / "audits.jsonl", "ab") as handle:
        handle.write(orjson.dumps(reject) + b"\n")


def test_a_failed_export_puts_the_whole_set_back_and_records_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _sample_home(tmp_path)
    before = _first_run(home)
    _change_inputs(home)
    real_replace = os.replace
    sft = home.export_path("sft")

    def full_disk_on_sft(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == sft:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr("distill.jsonio.os.replace", full_disk_on_sft)
    code, _, err = _cli(
        "run-all", "--home", str(home.root), "--recorded-at", RECORDED_AT, "--no-index"
    )
    assert code == 1 and "Traceback" not in err and "export_sft" in err
    after = {name: home.export_path(name).read_bytes() for name in ("rag", "sft", "preference")}
    assert after == before  # the new RAG export went back: all or none
    runs = sorted(p for p in home.reports_dir.iterdir() if p.is_dir())
    latest = orjson.loads((runs[-1] / "summary.json").read_bytes())
    assert latest["passed"] is False and latest["failed_stage"] == "export_sft"
    sft_receipt = orjson.loads((runs[-1] / "export_sft.json").read_bytes())
    assert "No space left on device" in " ".join(sft_receipt["validation"]["errors"])
    assert not (home.exports_dir / ".previous").exists()


def _can_chattr(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    return ok and os.geteuid() == 0


def test_an_immutable_sft_export_leaves_every_export_as_it_was(tmp_path: Path) -> None:
    if shutil.which("chattr") is None or not _can_chattr(tmp_path):
        pytest.skip("needs chattr +i (root on a file system with immutable flags)")
    home = _sample_home(tmp_path / "h")
    before = _first_run(home)
    _change_inputs(home)
    sft = home.export_path("sft")
    subprocess.run(["chattr", "+i", str(sft)], check=True)
    try:
        code, _, err = _cli(
            "run-all", "--home", str(home.root), "--recorded-at", RECORDED_AT, "--no-index"
        )
    finally:
        subprocess.run(["chattr", "-i", str(sft)], check=True)
    assert code == 1 and "Traceback" not in err
    after = {name: home.export_path(name).read_bytes() for name in ("rag", "sft", "preference")}
    assert after == before


def test_a_repo_root_with_a_symlink_loop_quarantines_instead_of_crashing(tmp_path: Path) -> None:
    home = _sample_home(tmp_path / "h")
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "sample" / "repo", repo)
    (repo / "src").mkdir(exist_ok=True)
    os.symlink("loop_b", repo / "src" / "loop_a")
    os.symlink("loop_a", repo / "src" / "loop_b")
    row = {
        "audit_id": "AUD-LOOP",
        "created_at": "2026-02-01T00:00:00Z",
        "topic": "Loop",
        "severity": "low",
        "finding": "See src/loop_a/x.py for the fix.",
    }
    with open(home.kb_dir / "audits.jsonl", "ab") as handle:
        handle.write(orjson.dumps(row) + b"\n")
    code, _, err = _cli(
        "run-all", "--home", str(home.root), "--recorded-at", RECORDED_AT, "--no-index",
        "--repo-root", str(repo),
    )  # fmt: skip
    assert code == 0, err
    quarantined = read_jsonl(home.quarantine_path("rag"))
    assert any(
        q["record_id"] == "audits:AUD-LOOP" and q["reason"] == "hallucinated_file_path"
        for q in quarantined
    )


# -- leftovers, modes, files distill did not write ----------------------------------------------


def test_a_writer_removes_temp_files_an_interrupted_run_left(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    _first_run(home)
    stale = [
        home.export_path("rag").parent / ".playbooks.jsonl.a1b2c3d4.tmp",
        home.evidence_dir / ".audits.jsonl.zz_99xyz.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a line")
    kept = home.evidence_dir / "notes.tmp"  # not a distill temp file
    kept.write_bytes(b"mine")
    (home.exports_dir / ".previous" / "rag").mkdir(parents=True)
    code, out, _ = _cli("audit-full", "--home", str(home.root), "--skip", "acceptance", "--json")
    leftovers = next(
        c for c in orjson.loads(out)["checks"] if c["name"] == "no leftovers of interrupted writes"
    )
    assert leftovers["passed"] is False and leftovers["level"] == "info"
    code, _, err = _cli("score", "--home", str(home.root), "--recorded-at", RECORDED_AT)
    assert code == 0 and "leftover" in err
    assert not any(p.exists() for p in stale) and kept.exists()
    assert not (home.exports_dir / ".previous").exists()


def test_collect_deletes_only_evidence_files_it_wrote(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    _first_run(home)
    mine = home.evidence_dir / "my-notes.jsonl"
    mine.write_bytes(b'{"note": "keep me"}\n')
    (home.kb_dir / "outcomes.jsonl").unlink()  # a stream gone: its evidence is stale
    code, _, err = _cli("collect", "--home", str(home.root), "--recorded-at", RECORDED_AT)
    assert code == 0, err
    assert mine.read_bytes() == b'{"note": "keep me"}\n'
    assert not (home.evidence_dir / "outcomes.jsonl").exists()


def test_outputs_honour_the_umask_and_keep_an_existing_mode(tmp_path: Path) -> None:
    home = _sample_home(tmp_path)
    previous = os.umask(0o022)
    try:
        _first_run(home)
        rag = home.export_path("rag")
        assert stat.S_IMODE(rag.stat().st_mode) == 0o644
        rag.chmod(0o640)
        _first_run(home)
        assert stat.S_IMODE(rag.stat().st_mode) == 0o640
    finally:
        os.umask(previous)


@pytest.mark.slow
def test_index_cleanup_keeps_the_published_version(pristine: Home, tmp_path: Path) -> None:
    home = copy_home(pristine, tmp_path)
    embedder = make_embedder("hash-384")
    for _ in range(2):
        index_export(home, str(home.index_dir), embedder, rebuild=True)
    store = PlaybookStore(str(home.index_dir))
    published = store.require_manifest()
    # an interrupted build: a newer version written, never published
    store.latest_table().delete("category = 'accepted'")
    assert old_versions(store) >= 2
    code, out, err = _cli("index", "cleanup", "--home", str(home.root), "--json")
    assert code == 0, err
    assert orjson.loads(out)["versions_removed"] >= 2
    assert old_versions(store) == 0
    assert store.stats()["rows"] == published.rows
    assert next(index_sync_checks(home, str(home.index_dir))).passed


def test_a_stale_evidence_file_with_a_long_first_row_is_still_recognised(tmp_path: Path) -> None:
    from distill.stages.collect import _written_by_distill

    stale = tmp_path / "gone.jsonl"
    stale.write_bytes(b'{"response":"' + b"x" * 3_000_000 + b'","schema":"evidence.v1"}\n')
    other = tmp_path / "notes.jsonl"
    other.write_bytes(b'{"response":"x"}\n{"schema":"evidence.v1"}\n')
    assert _written_by_distill(stale, "evidence.v1")
    assert not _written_by_distill(other, "evidence.v1")
