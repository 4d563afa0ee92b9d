"""The index on real LanceDB on disk: build, update, search modes, identity, atomicity."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from distill.home import Home
from distill.index import HashingEmbedder, PlaybookStore, Retriever, read_playbooks
from distill.index.stage import index_export

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, pristine: Home) -> Home:
    """A home holding only the sample corpus's RAG export (no index yet)."""
    home = Home(tmp_path.resolve())
    home.export_path("rag").parent.mkdir(parents=True)
    shutil.copy(pristine.export_path("rag"), home.export_path("rag"))
    return home


def _rows(home: Home) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in home.export_path("rag").read_bytes().splitlines()]


def _write(home: Home, rows: list[dict[str, Any]]) -> None:
    home.export_path("rag").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def test_build_indexes_every_playbook_and_searches_every_mode(home: Home) -> None:
    report, result = index_export(home, str(home.index_dir), HashingEmbedder())
    rows = _rows(home)
    assert report.passed and result.rows == result.embedded == len(rows)
    store = PlaybookStore(str(home.index_dir))
    stats = store.stats()
    assert stats["rows"] == len(rows) and stats["unindexed_rows"] == 0
    assert stats["embedder"]["name"] == "hash-384" and "text_idx" in stats["indexes"]
    retriever = Retriever(store)
    target = rows[17]
    for mode in ("hybrid", "vector", "fts"):
        hits = retriever.search(target["instruction"] + " " + target["response"], mode=mode)
        assert hits[0].id == target["id"], mode
        assert all(h.sig_hash and h.category in ("accepted", "partially_accepted") for h in hits)


def test_filters_restrict_category_and_source(home: Home) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder())
    retriever = Retriever(PlaybookStore(str(home.index_dir)))
    for mode in ("hybrid", "vector", "fts"):
        hits = retriever.search(
            "webhook retries", mode=mode, top_k=20, category="partially_accepted", source="audits"
        )
        assert hits and {(h.category, h.source) for h in hits} == {("partially_accepted", "audits")}


def test_update_embeds_only_changed_rows_and_deletes_gone_ones(home: Home) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder())
    rows = _rows(home)
    for row in rows[:3]:  # changed content → a new sig_hash
        row["text"] += "\nverify the zebra-striped ledger reconciles"
        row["provenance"]["sig_hash"] = "f" * 64
    added = [
        dict(rows[5], id=f"audits:NEW-{i}", text=f"brand new quokka playbook {i}") for i in range(2)
    ]
    kept = rows[:-4] + added
    _write(home, kept)
    report, result = index_export(home, str(home.index_dir), HashingEmbedder())
    assert (result.embedded, result.inserted, result.updated, result.deleted) == (5, 2, 3, 4)
    assert report.extra["table_version"] > 0
    store = PlaybookStore(str(home.index_dir))
    assert {r["id"] for r in store.rows(["id"])} == {r["id"] for r in kept}
    assert store.stats()["unindexed_rows"] == 0
    retriever = Retriever(store)
    for mode in ("hybrid", "vector", "fts"):
        assert retriever.search("brand new quokka playbook 1", mode=mode)[0].id == "audits:NEW-1"
        assert retriever.search("zebra-striped ledger", mode=mode, top_k=3)[0].id in {
            r["id"] for r in rows[:3]
        }


def test_unchanged_export_embeds_nothing(home: Home) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder())
    _, result = index_export(home, str(home.index_dir), HashingEmbedder())
    assert result.embedded == 0 and result.unchanged == len(_rows(home))


def test_another_embedder_is_refused_with_a_rebuild_hint(home: Home) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder(seed=0))
    store = PlaybookStore(str(home.index_dir))
    with pytest.raises(DistillError, match="built with embedder hash-384") as info:
        Retriever(store, embedder=HashingEmbedder(seed=7))
    assert "distill index build" in info.value.hint
    with pytest.raises(DistillError):
        store.update(read_playbooks(home.export_path("rag")), HashingEmbedder(dim=64))


def test_updating_with_another_embedder_rebuilds(home: Home) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder(seed=0))
    report, result = index_export(home, str(home.index_dir), HashingEmbedder(seed=3))
    assert report.params["action"] == "build" and result.embedded == len(_rows(home))
    assert PlaybookStore(str(home.index_dir)).stats()["embedder"]["seed"] == 3


def test_missing_or_empty_index_is_an_error(home: Home) -> None:
    with pytest.raises(DistillError, match="no index"):
        Retriever(PlaybookStore(str(home.index_dir)))
    _write(home, [])
    index_export(home, str(home.index_dir), HashingEmbedder())
    with pytest.raises(DistillError, match="empty"):
        Retriever(PlaybookStore(str(home.index_dir)))


def test_hashing_embedder_is_seeded_and_normalised() -> None:
    a, b = HashingEmbedder(seed=1), HashingEmbedder(seed=2)
    texts = ["verify the invoice totals", "something else entirely"]
    assert np.array_equal(a.embed(texts), HashingEmbedder(seed=1).embed(texts))
    assert not np.array_equal(a.embed(texts), b.embed(texts))
    assert np.allclose(np.linalg.norm(a.embed(texts), axis=1), 1.0)
    assert a.embed(texts).dtype == np.float32


_READER = textwrap.dedent("""
    import os, sys, time
    from distill.index import PlaybookStore, Retriever
    store, seen, stop = PlaybookStore(sys.argv[1]), set(), sys.argv[2]
    deadline, ready = time.time() + 60, False  # a bound, should the test die before "stop"
    while not os.path.exists(stop) and time.time() < deadline:
        try:
            retriever = Retriever(store)
            hits = retriever.search("webhook idempotency", mode="hybrid", top_k=3)
            seen.add((retriever.table.count_rows(), len(hits) > 0))
        except Exception as err:  # any error is a failure of atomicity
            seen.add(("error", type(err).__name__, str(err)[:80]))
        if not ready:  # one read done: the test starts rebuilding under it
            print("ready", flush=True)
            ready = True
    print(sorted(seen, key=str))
""")


def test_a_reader_never_sees_a_half_built_table(home: Home, tmp_path: Path) -> None:
    index_export(home, str(home.index_dir), HashingEmbedder())
    rows = len(_rows(home))
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(home.index_dir), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    try:
        assert reader.stdout.readline() == "ready\n"  # it has read the index: rebuild under it
        for _ in range(4):
            index_export(home, str(home.index_dir), HashingEmbedder(), rebuild=True)
    finally:
        stop.touch()
    out, _ = reader.communicate(timeout=60)
    assert out.strip() == f"[({rows}, True)]"


def test_cli_build_stats_search_update(home: Home) -> None:
    args = ["--home", str(home.root)]
    built = runner.invoke(app, ["index", "build", *args, "--embedder", "hash-384", "--json"])
    assert built.exit_code == 0, built.stderr
    assert orjson.loads(built.stdout)["index"]["embedded"] == len(_rows(home))
    stats = orjson.loads(runner.invoke(app, ["index", "stats", *args, "--json"]).stdout)
    assert stats["rows"] == len(_rows(home)) and stats["unindexed_rows"] == 0
    found = runner.invoke(
        app, ["index", "search", "tax rounding", *args, "--mode", "fts", "--top-k", "3", "--json"]
    )
    payload = orjson.loads(found.stdout)  # the shape POST /v1/search answers
    hits = payload["hits"]
    assert payload["mode"] == "fts" and payload["index_version"] == stats["version"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and all("tax" in h["text"].lower() for h in hits)
    human = runner.invoke(app, ["index", "search", "tax rounding", *args])
    assert human.exit_code == 0 and "hybrid search" in human.stdout
    updated = runner.invoke(app, ["index", "update", *args, "--embedder", "hash-384", "--json"])
    assert orjson.loads(updated.stdout)["index"]["embedded"] == 0
    bad = runner.invoke(app, ["index", "search", "x", *args, "--mode", "bogus"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_real_minilm_embeds_and_retrieves(tmp_path: Path) -> None:
    from distill.index import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    identity = embedder.identity()
    assert identity["name"] == "all-MiniLM-L6-v2" and identity["dim"] == 384
    assert len(identity["model_hash"]) == 64
    vectors = embedder.embed(
        [
            "How do I make webhook handling idempotent?",
            "Store each event id and skip events already processed.",
            "The cafeteria serves soup on Tuesdays.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
