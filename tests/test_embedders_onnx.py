"""The ONNX Runtime embedders: their own identity, deterministic vectors, agreement with torch,
and the per-machine export made once, atomically."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from distill.errors import DistillError
from distill.eval.retrieval import BeirDoc, beir_sample
from distill.index import PlaybookStore, Retriever, embedder_for, make_embedder, onnx_export
from distill.index.embedders import Embedder
from distill.index.onnx_embedder import OnnxEmbedder
from distill.index.onnx_export import ONNX, ONNX_INT8, OnnxExport, ensure_export, read_export
from distill.machine_cache import machine_cache_dir

SENTENCES = [
    "How do I make webhook handling idempotent?",
    "Webhook handlers: store each event id and skip events already processed.",
    "Retry the payment job once when the gateway answers 503.",
    "The cafeteria serves soup on Tuesdays.",
    "Résumé of the naïve café migration — unicode survives tokenisation.",
    "flaky test " * 300,  # past the 256-token truncation
]
DOCS = {
    "idempotent": "Stripe webhooks: record each event id and ignore duplicates already handled.",
    "retry": "Retry a failed payment job once with backoff when the gateway returns 503.",
    "soup": "The cafeteria menu: soup on Tuesdays, pasta on Fridays.",
}


def test_the_machine_cache_follows_xdg_cache_home(tmp_path: Path) -> None:
    assert machine_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "distill"
    assert machine_cache_dir({}) == Path.home() / ".cache" / "distill"


def test_without_onnxruntime_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(DistillError, match="need onnxruntime") as info:
        make_embedder("minilm-onnx-int8")
    assert "pip install 'onnxruntime" in (info.value.hint or "")


def _fake_export(calls: list[str]) -> object:
    def export(source: Path, sha: str, name: str, fp32: Path | None, scratch: Path) -> OnnxExport:
        calls.append(name)
        (scratch / "model.onnx").write_bytes(b"graph of " + name.encode())
        return OnnxExport(
            name=name, file="model.onnx", dim=4, max_seq_length=8, source=str(source),
            source_sha256=sha, recipe=onnx_export.RECIPES[name], versions={},
        )  # fmt: skip

    return export


def test_an_export_is_made_once_and_a_half_made_or_outdated_one_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(onnx_export, "_export", _fake_export(calls))
    sha = "ab" * 32
    leftover = onnx_export.export_folder(tmp_path, ONNX, sha)
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"half written")  # no description: never completed

    folder = ensure_export(Path("/models/minilm"), sha, ONNX_INT8, tmp_path)

    assert calls == [ONNX, ONNX_INT8]  # int8 is quantised from the fp32 export, made first
    assert (leftover / "model.onnx").read_bytes() == b"graph of minilm-onnx"
    assert read_export(folder) is not None and read_export(leftover) is not None
    assert f"to {folder}" in capfd.readouterr().err  # says where, on first export
    ensure_export(Path("/models/minilm"), sha, ONNX_INT8, tmp_path)
    assert calls == [ONNX, ONNX_INT8] and capfd.readouterr().err == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left
    monkeypatch.setitem(onnx_export.RECIPES, ONNX_INT8, "a newer recipe")
    ensure_export(Path("/models/minilm"), sha, ONNX_INT8, tmp_path)
    assert calls == [ONNX, ONNX_INT8, ONNX_INT8]  # made again; fp32's recipe is unchanged


def test_a_failed_export_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> OnnxExport:
        raise RuntimeError("tracer failed")

    monkeypatch.setattr(onnx_export, "_export", broken)
    with pytest.raises(RuntimeError, match="tracer failed"):
        ensure_export(Path("/models/minilm"), "cd" * 32, ONNX, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{ONNX}-{'cd' * 8}.lock"]


# --- the real model: export, vectors, identity ----------------------------------------------


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-xdg")


@pytest.fixture(scope="module")
def real(onnx_cache: Path) -> Iterator[dict[str, Embedder]]:
    """torch MiniLM and both ONNX embedders, exported once into this module's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(onnx_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")  # the export never reaches for a hub
        yield {name: make_embedder(name) for name in ("minilm", ONNX, ONNX_INT8)}


@pytest.fixture
def use_onnx_cache(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_onnx_vectors_agree_with_torch_and_are_unit_length(real: dict[str, Embedder]) -> None:
    torch_vectors = real["minilm"].embed(SENTENCES)
    fp32, int8 = real[ONNX].embed(SENTENCES), real[ONNX_INT8].embed(SENTENCES)
    for vectors in (fp32, int8):
        assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(fp32, torch_vectors).min() >= 0.9999  # the same model, traced
    assert _cosines(int8, torch_vectors).min() >= 0.98  # int8 weights: close, not equal
    # what search relies on: the related pair stays closer than the unrelated one
    for vectors in (fp32, int8):
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3] + 0.3


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_same_texts_give_byte_identical_vectors_across_runs(
    real: dict[str, Embedder], use_onnx_cache: None
) -> None:
    script = textwrap.dedent(
        f"""
        import hashlib, json, sys
        from distill.index import make_embedder
        texts = json.loads(sys.stdin.read())
        for name in ({ONNX!r}, {ONNX_INT8!r}):
            print(hashlib.sha256(make_embedder(name).embed(texts).tobytes()).hexdigest())
        """
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(SENTENCES),
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
        for _ in range(2)
    ]
    here = [
        hashlib.sha256(real[n].embed(SENTENCES).tobytes()).hexdigest() for n in (ONNX, ONNX_INT8)
    ]
    assert runs[0] == runs[1] == here


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_export_is_reused_on_the_next_load(
    real: dict[str, Embedder], use_onnx_cache: None, capfd: pytest.CaptureFixture[str]
) -> None:
    embedder = real[ONNX_INT8]
    assert isinstance(embedder, OnnxEmbedder)
    folder = embedder.folder
    graph = folder / "model.int8.onnx"
    before = graph.stat().st_mtime_ns
    again = make_embedder(ONNX_INT8)
    assert isinstance(again, OnnxEmbedder) and again.folder == folder
    assert graph.stat().st_mtime_ns == before
    assert "exporting" not in capfd.readouterr().err
    export = read_export(folder)
    assert export is not None and export.source_sha256 == real["minilm"].identity()["model_hash"]


def _store(folder: Path, embedder: Embedder) -> PlaybookStore:
    docs = [
        BeirDoc(
            id=key, title=key, text=text, line=n, sha256=hashlib.sha256(text.encode()).hexdigest()
        )
        for n, (key, text) in enumerate(DOCS.items(), 1)
    ]
    samples = [
        beir_sample(d, source_file="docs.jsonl", recorded_at="2026-01-01T00:00:00Z") for d in docs
    ]
    store = PlaybookStore(str(folder))
    store.build(samples, embedder)
    return store


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_index_built_with_one_minilm_backend_refuses_the_others(
    real: dict[str, Embedder], use_onnx_cache: None, tmp_path: Path
) -> None:
    identities = {name: e.identity() for name, e in real.items()}
    assert len({str(sorted(i.items())) for i in identities.values()}) == 3
    assert identities[ONNX_INT8]["model_hash"] == identities["minilm"]["model_hash"]

    onnx_store = _store(tmp_path / "int8", real[ONNX_INT8])
    for other in ("minilm", ONNX):
        with pytest.raises(DistillError, match=f"built with embedder {ONNX_INT8}") as info:
            Retriever(onnx_store, embedder=real[other])
        assert f"--embedder {ONNX_INT8}" in (info.value.hint or "")
    torch_store = _store(tmp_path / "torch", real["minilm"])
    with pytest.raises(DistillError, match="built with embedder all-MiniLM-L6-v2"):
        Retriever(torch_store, embedder=real[ONNX_INT8])

    # a reader without an embedder rebuilds the one the manifest names, from the machine cache
    reader = Retriever(onnx_store)
    assert reader.embedder.identity() == identities[ONNX_INT8]
    assert embedder_for(identities[ONNX]).identity() == identities[ONNX]
    query = "ignore duplicate webhook events"
    for store in (onnx_store, torch_store):
        assert [hit.id for hit in Retriever(store).search(query, mode="vector", top_k=1)] == [
            "idempotent"
        ]
