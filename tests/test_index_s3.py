"""The index on object storage: ``--index-dir s3://bucket/prefix`` end to end, against moto's S3
server on 127.0.0.1 — the published version pinned by the manifest, the writer lock across
machines, and credentials that appear in no output."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import ConfigError
from distill.home import Home
from distill.index import HashingEmbedder, PlaybookStore, Retriever, read_playbooks
from distill.index.objectstore import (
    LOCK_FILE,
    MANIFEST_FILE,
    IndexBusy,
    IndexConflict,
    index_files,
)
from distill.index.stage import table_content_hash
from distill.schemas import RagSample
from distill.secrets import scrub

from .conftest import FIXTURES, RECORDED_AT
from .helpers.answers import TASK
from .helpers.objectstore import make_bucket, moto_server, objects, point_at

runner = CliRunner()
EMBEDDER = "hash-64"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables, pointed at the moto server, with credentials made up for this test."""
    return point_at(endpoint, monkeypatch)


@pytest.fixture
def uri(aws: dict[str, str]) -> str:
    """A fresh bucket's prefix: the index's URI."""
    bucket = "distill-" + secrets.token_hex(6)
    make_bucket(bucket)
    return f"s3://{bucket}/team/index"


@pytest.fixture(scope="module")
def samples(pristine: Home) -> list[RagSample]:
    return read_playbooks(pristine.export_path("rag"))


def distill(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


# --- the pipeline, end to end ------------------------------------------------------------------


def test_run_all_search_replay_audit_and_release_work_on_s3(
    tmp_path: Path, uri: str, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURES / "sample" / "data", home / "data")
    monkeypatch.setenv("DISTILL_HOME", str(home))
    monkeypatch.setenv("DISTILL_INDEX_URI", uri)  # the variable: no --index-dir below
    monkeypatch.setenv("DISTILL_EMBEDDER", EMBEDDER)
    outputs = [
        distill("run-all", "--recorded-at", RECORDED_AT, "--json"),
        searched := distill("index", "search", "tax rates lookup by region", "--json"),
        replayed := distill("replay", "--task", TASK, "--dry-run", "--json"),
        distill("index", "stats", "--json"),
        distill("audit-full", "--json"),
        distill("release-freeze", "--json"),
    ]
    stored = objects(uri)
    manifest = orjson.loads(stored[f"team/index/{MANIFEST_FILE}"])
    hits = orjson.loads(searched.stdout)
    assert hits["index_version"] == manifest["version"] and hits["hits"]
    assert orjson.loads(replayed.stdout)["hits"]  # the dry run retrieved from S3
    assert not (home / "index").exists()  # nothing went to the home's local index
    release = orjson.loads(
        (home / "reports" / "distillation" / "release-manifest.json").read_text()
    )
    digest = hashlib.sha256(stored[f"team/index/{MANIFEST_FILE}"]).hexdigest()
    assert release["index"]["uri"] == uri and release["index"]["manifest_sha256"] == digest
    assert f"team/index/{LOCK_FILE}" not in stored  # every writer let go of the lock
    leaks = _leaks(aws, home, [o.stdout + o.stderr for o in outputs], stored)
    assert leaks == []


def _leaks(
    aws: dict[str, str], home: Path, printed: list[str], stored: dict[str, bytes]
) -> list[str]:
    """Where any of the credentials appears: a file of the home, an output, an index object."""
    found = []
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = aws[name].encode()
        found += [
            f"{p}: {name}" for p in home.rglob("*") if p.is_file() and secret in p.read_bytes()
        ]
        found += [f"output {i}: {name}" for i, text in enumerate(printed) if aws[name] in text]
        found += [f"{key}: {name}" for key, body in stored.items() if secret in body]
    return found


def test_an_unreachable_bucket_is_one_line_that_names_no_credential(
    aws: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["index", "search", "anything", "--index-dir", "s3://no-such-bucket-here/index"]
    )
    assert result.exit_code == 1 and "S3 answered NoSuchBucket" in result.stderr
    assert "create the bucket no-such-bucket-here" in result.stderr
    assert not any(aws[name] in result.stdout + result.stderr for name in aws if "KEY" in name)


def test_credentials_are_scrubbed_from_what_a_library_might_echo(aws: dict[str, str]) -> None:
    echoed = f"403 for key {aws['AWS_ACCESS_KEY_ID']} signed with {aws['AWS_SECRET_ACCESS_KEY']}"
    assert scrub(echoed) == "403 for key [redacted] signed with [redacted]"
    assert aws["AWS_SESSION_TOKEN"] not in scrub(
        orjson.dumps({"t": aws["AWS_SESSION_TOKEN"]}).decode()
    )


def test_only_s3_object_stores_are_taken() -> None:
    with pytest.raises(ConfigError, match="not on gs://") as refused:
        index_files("gs://bucket/index")
    assert "s3://bucket/prefix" in refused.value.hint


# --- the published version ---------------------------------------------------------------------


def test_a_reader_stays_on_the_published_version_while_an_update_writes(
    uri: str, samples: list[RagSample], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder(dim=64)
    first, added = samples[:-5], samples[-5:]
    PlaybookStore(uri).build(first, embedder)
    reader = Retriever(PlaybookStore(uri))
    published = reader.version

    def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("killed between the table's new version and the manifest")

    with monkeypatch.context() as patched, pytest.raises(RuntimeError):
        patched.setattr(PlaybookStore, "_publish", crash)
        PlaybookStore(uri).update(samples, embedder)  # rows written, never published
    assert PlaybookStore(uri).latest_table().count_rows() == len(samples)
    late = Retriever(PlaybookStore(uri))  # a reader opened after the crash
    assert late.version == published and late.table.count_rows() == len(first)
    report = PlaybookStore(uri).update(samples, embedder)  # publishes what the crash wrote
    assert report.version > published and report.rows == len(first) + len(added)
    assert Retriever(PlaybookStore(uri)).table.count_rows() == len(samples)
    assert reader.version == published and reader.table.count_rows() == len(first)


def test_an_s3_build_holds_what_a_local_build_holds(
    uri: str, samples: list[RagSample], tmp_path: Path
) -> None:
    remote, local = PlaybookStore(uri), PlaybookStore(str(tmp_path / "index"))
    for store in (remote, local):
        store.build(samples, HashingEmbedder(dim=64))
    assert table_content_hash(remote) == table_content_hash(local)
    query = "tax rates lookup by region"
    ids = [[h.id for h in Retriever(s).search(query, top_k=5)] for s in (remote, local)]
    assert ids[0] == ids[1]
    assert remote.stats()["size_bytes"] > 0 and remote.stats()["uri"] == uri


# --- one writer ----------------------------------------------------------------------------------


def _held_elsewhere(uri: str) -> None:
    """The lock as a writer on another machine leaves it."""
    note = {"pid": 4242, "command": "index build", "since": "2026-01-01T00:00:00Z", "host": "ci-7"}
    index_files(uri).write(LOCK_FILE, orjson.dumps(note), expected=None)


def test_a_second_writer_is_refused_until_the_lock_is_removed(
    uri: str, samples: list[RagSample], pristine: Home
) -> None:
    PlaybookStore(uri).build(samples, HashingEmbedder(dim=64))
    _held_elsewhere(uri)
    args = ["--home", str(pristine.root), "--index-dir", uri, "--embedder", EMBEDDER]
    refused = runner.invoke(app, ["index", "update", *args])
    assert refused.exit_code == 1
    assert "pid 4242 on ci-7 (distill index build" in refused.stderr
    assert "distill index unlock" in refused.stderr
    with pytest.raises(IndexBusy):
        PlaybookStore(uri).build(samples, HashingEmbedder(dim=64))
    removed = distill("index", "unlock", "--index-dir", uri, "--json")
    assert orjson.loads(removed.stdout)["removed"]["host"] == "ci-7"
    distill("index", "update", *args)
    assert LOCK_FILE not in {key.rsplit("/", 1)[-1] for key in objects(uri)}


def test_the_lock_of_a_dead_writer_on_this_machine_is_taken_over(
    uri: str, samples: list[RagSample]
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    note = {
        "pid": int(dead.stdout),
        "command": "index build",
        "since": "?",
        "host": socket.gethostname(),
    }
    index_files(uri).write(LOCK_FILE, orjson.dumps(note), expected=None)
    report = PlaybookStore(uri).build(samples, HashingEmbedder(dim=64))
    assert report.rows == len(samples)


def test_a_publish_over_a_manifest_replaced_meanwhile_is_refused(
    uri: str, samples: list[RagSample]
) -> None:
    store = PlaybookStore(uri)
    store.build(samples[:10], HashingEmbedder(dim=64))
    other = store.require_manifest().model_copy(update={"rows": 999})
    with store.writing("index update") as expected, pytest.raises(IndexConflict):
        store.write_manifest(other)  # another writer publishes while this one works
        store.write_manifest(store.require_manifest(), expected=expected)
    assert store.require_manifest().rows == 999  # the other writer's manifest stands


# --- serve and its replicas ---------------------------------------------------------------------


def test_serve_answers_v1_search_from_s3_and_moves_to_a_new_version(
    tmp_path: Path, uri: str, aws: dict[str, str], samples: list[RagSample]
) -> None:
    """The real `distill serve` in its own process, over real HTTP: what a replica behind a load
    balancer does. It searches the published version and moves to the next one on its own."""
    PlaybookStore(uri).build(samples[:-5], HashingEmbedder(dim=64))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    command = [sys.executable, "-c", "from distill.cli import main; main()", "serve", "--json"]
    command += ["--home", str(tmp_path), "--index-dir", uri, "--port", str(port)]
    command += ["--model-url", "http://127.0.0.1:9/v1", "--model", "m"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        warm = orjson.loads(process.stdout.readline()) if process.stdout else {}
        first = _search(port)
        assert warm["index"]["uri"] == uri and first["index_version"] == warm["index"]["version"]
        PlaybookStore(uri).update(samples, HashingEmbedder(dim=64))
        newer = PlaybookStore(uri).require_manifest().version
        _wait_until(lambda: _search(port)["index_version"] == newer)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=60)
    assert not any(
        aws[name] in out + err for name in aws if name.endswith(("_KEY", "_ID", "TOKEN"))
    )


def _search(port: int) -> dict[str, Any]:
    body = {"query": "tax rates lookup by region", "top_k": 3}
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/search", json=body, timeout=30)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(ready: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {seconds} s")


# --- the real embedder ---------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_builds_and_searches_an_s3_index_as_it_does_a_local_one(
    uri: str, samples: list[RagSample], tmp_path: Path
) -> None:
    from distill.index import make_embedder

    embedder = make_embedder("minilm")
    some = samples[:24]
    remote, local = PlaybookStore(uri), PlaybookStore(str(tmp_path / "index"))
    for store in (remote, local):
        store.build(some, embedder)
    assert table_content_hash(remote) == table_content_hash(local)
    query = some[3].text[:200]
    assert Retriever(remote, embedder).search(query, mode="vector", top_k=1)[0].id == some[3].id
