"""Every setting distill reads, resolved once, at the edge: flag > environment > file > default.

The entry points (the CLI commands, ``serve``, ``mcp`` and ``doctor`` among them) call these
functions once, with their flags and ``os.environ``; the library receives the typed results
(``IndexSettings``, ``ModelSettings``, seconds, thresholds) as arguments and never reads a
``DISTILL_*`` variable itself. The files are the home's ``distill.toml`` (collect limits and
streams) and ``models/models.toml`` (the models and the relevance threshold). API keys and the
serve token come only from the environment, as ``SecretStr``: never printed, never written.

The CLI's options also name their variable with typer's ``envvar=`` (``--help`` shows it); these
functions apply the same order for a caller without flags, such as ``doctor``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from distill.errors import ConfigError, DistillError
from distill.home import Home
from distill.index import PlaybookStore, Retriever
from distill.index.embedders import DEFAULT_EMBEDDER, MINILM, Embedder, make_embedder
from distill.index.onnx_export import ONNX_NAMES
from distill.index.relevance import DEFAULT_MIN_RELEVANCE
from distill.machine_cache import machine_cache_dir
from distill.replay.clients import PromptStyle
from distill.replay.config import GGUF_NAME, ModelSettings
from distill.replay.limits import DEFAULT_DEADLINE_S
from distill.runs.drift import DEFAULT_THRESHOLD

Env = Mapping[str, str]

HOME = "DISTILL_HOME"
INDEX_URI = "DISTILL_INDEX_URI"
EMBEDDER = "DISTILL_EMBEDDER"
EMBED_MODEL = "DISTILL_EMBED_MODEL"
MODEL_URL = "DISTILL_MODEL_URL"
MODEL = "DISTILL_MODEL"
API_KEY = "DISTILL_API_KEY"
GGUF = "DISTILL_GGUF"
ESCALATION_URL = "DISTILL_ESCALATION_URL"
ESCALATION_MODEL = "DISTILL_ESCALATION_MODEL"
ESCALATION_API_KEY = "DISTILL_ESCALATION_API_KEY"
REPLAY_DEADLINE = "DISTILL_REPLAY_DEADLINE"
DRIFT_THRESHOLD = "DISTILL_DRIFT_THRESHOLD"
API_TOKEN = "DISTILL_API_TOKEN"
DEBUG = "DISTILL_DEBUG"
# A source checkout (pyproject.toml beside the package) keeps the model in its models/,
# where `make models` and `make demo` write it.
CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: what it sets, its flag and its line in a file, if any."""

    name: str
    sets: str
    flag: str = ""
    file: str = ""
    secret: bool = False


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(HOME, "the home folder", "--home"),
    EnvVar(INDEX_URI, "the index: a folder or s3://bucket/prefix", "--index-dir"),
    EnvVar(
        EMBEDDER, "the embedder: minilm-onnx-int8, minilm-onnx, minilm or hash-<dim>", "--embedder"
    ),
    EnvVar(EMBED_MODEL, "a folder holding the MiniLM model (instead of the packaged one)"),
    EnvVar(
        MODEL_URL, "an OpenAI-compatible server for the local model", "--model-url", "[local] url"
    ),
    EnvVar(MODEL, "the model name on that server", "--model", "[local] model"),
    EnvVar(API_KEY, "the key of that server", secret=True),
    EnvVar(GGUF, "the embedded model's GGUF file", file="[local] path"),
    EnvVar(ESCALATION_URL, "the escalation model's server", file="[escalation] url"),
    EnvVar(ESCALATION_MODEL, "the escalation model's name", file="[escalation] model"),
    EnvVar(ESCALATION_API_KEY, "the escalation server's key", secret=True),
    EnvVar(REPLAY_DEADLINE, "seconds a replay's model calls may take in all", "--deadline"),
    EnvVar(DRIFT_THRESHOLD, "the relative change that counts as drift", "--drift-threshold"),
    EnvVar(API_TOKEN, "the bearer token of serve and mcp over HTTP", secret=True),
    EnvVar(DEBUG, "1: show the traceback of an error"),
)


def resolve_home(flag: Path | None, env: Env) -> Home:
    """``--home`` > ``$DISTILL_HOME`` > the current directory."""
    return Home.resolve(flag if flag is not None else env.get(HOME) or None)


@dataclass(frozen=True)
class IndexSettings:
    """Where the index lives and which embedder builds it."""

    uri: str
    embedder: str = DEFAULT_EMBEDDER  # minilm-onnx-int8, minilm-onnx, minilm, hash-<dim>, a folder
    seed: int = 0
    minilm_path: str | None = None  # $DISTILL_EMBED_MODEL: where the MiniLM model lives

    def make_embedder(self) -> Embedder:
        return make_embedder(self.embedder, seed=self.seed)

    def retriever(self) -> Retriever:
        """The published table, with the embedder it was built with."""
        return Retriever(PlaybookStore(self.uri), minilm_path=self.minilm_path)


def index_settings(
    home: Home,
    env: Env,
    *,
    index_dir: str | None = None,
    embedder: str | None = None,
    seed: int = 0,
) -> IndexSettings:
    """``--index-dir`` > ``$DISTILL_INDEX_URI`` > ``<home>/index``; ``--embedder`` >
    ``$DISTILL_EMBEDDER`` > minilm-onnx-int8. ``$DISTILL_EMBED_MODEL``, a model folder, stands
    in for the default and for ``minilm`` (on torch); an ONNX or hashing embedder named
    explicitly is kept."""
    minilm_path = env.get(EMBED_MODEL) or None
    uri = index_dir or env.get(INDEX_URI) or str(home.index_dir)
    named = embedder or env.get(EMBEDDER)
    if named is None and not minilm_path:
        # an existing index keeps the embedder it was built with: a new default must not
        # rebuild it behind the user's back (the default is for new indexes)
        built_with = _published_embedder(uri)
        if built_with is not None:
            named, seed = built_with[0], built_with[1] if built_with[1] is not None else seed
    chosen = named or DEFAULT_EMBEDDER
    if minilm_path and (named is None or chosen in ("minilm", MINILM)):
        chosen = minilm_path
    return IndexSettings(uri=uri, embedder=chosen, seed=seed, minilm_path=minilm_path)


def _published_embedder(uri: str) -> tuple[str, int | None] | None:
    """The embedder name (and hashing seed) of the index published at ``uri``; None when
    there is none yet or it cannot be read (the command then reports that itself)."""
    try:
        manifest = PlaybookStore(uri).manifest()
    except (DistillError, OSError, ValueError):
        return None
    if manifest is None:
        return None
    name = str(manifest.embedder.get("name", ""))
    if name.startswith("hash-"):
        raw_seed = manifest.embedder.get("seed")
        return name, int(raw_seed) if raw_seed is not None else None
    if name == MINILM:
        return "minilm", None
    return (name, None) if name in ONNX_NAMES else None


def drift_threshold(flag: float | None, env: Env) -> float:
    """``--drift-threshold`` > ``$DISTILL_DRIFT_THRESHOLD`` > 0.2."""
    value = _number(flag, env, DRIFT_THRESHOLD, "--drift-threshold", DEFAULT_THRESHOLD)
    if not 0 < value < math.inf:
        raise ConfigError(
            f"drift threshold must be > 0, got {value}", hint="e.g. --drift-threshold 0.2"
        )
    return value


def replay_deadline(flag: float | None, env: Env) -> float:
    """Seconds a replay's model calls may take in all: ``--deadline`` >
    ``$DISTILL_REPLAY_DEADLINE`` > 180."""
    seconds = _number(flag, env, REPLAY_DEADLINE, "--deadline", DEFAULT_DEADLINE_S)
    if not 0 < seconds < math.inf:
        source = "--deadline" if flag is not None else f"${REPLAY_DEADLINE}"
        raise ConfigError(
            f"{source} {seconds!r}: the replay deadline is a number of seconds above 0",
            hint=f"e.g. --deadline 180, or {REPLAY_DEADLINE}=180",
        )
    return seconds


def _number(flag: float | None, env: Env, name: str, option: str, default: float) -> float:
    if flag is not None:
        return float(flag)
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigError(
            f"${name} {raw!r} is not a number", hint=f"set {name} to a number, or pass {option}"
        ) from err


def serve_token(env: Env) -> SecretStr | None:
    """The bearer token of ``serve``, ``mcp`` over HTTP and ``replay --server``."""
    return _secret(env, API_TOKEN)


def local_model(
    home: Home,
    env: Env,
    *,
    url: str | None = None,
    model: str | None = None,
    prompt_style: str | None = None,
) -> ModelSettings:
    """The local model: a server when ``--model-url`` > ``$DISTILL_MODEL_URL`` > ``[local] url``
    is set, else the embedded GGUF (``$DISTILL_GGUF`` > ``[local] path`` > one per machine)."""
    table = _models_table(home, "local")
    return ModelSettings(
        url=url or env.get(MODEL_URL) or table.get("url"),
        model=model or env.get(MODEL) or table.get("model"),
        api_key=_secret(env, API_KEY),
        path=gguf_path(home, env, table.get("path")),
        n_ctx=int(table.get("n_ctx", 4096)),
        max_tokens=int(table.get("max_tokens", 200)),
        prompt_style=_style(prompt_style or table.get("prompt_style")),
    )


def escalation_model(home: Home, env: Env) -> ModelSettings | None:
    """The escalation model, when ``$DISTILL_ESCALATION_URL`` > ``[escalation] url`` is set."""
    table = _models_table(home, "escalation")
    url = env.get(ESCALATION_URL) or table.get("url")
    if not url:
        return None
    return ModelSettings(
        url=url,
        model=env.get(ESCALATION_MODEL) or table.get("model") or "default",
        api_key=_secret(env, ESCALATION_API_KEY),
        path=None,
        n_ctx=int(table.get("n_ctx", 8192)),
        max_tokens=int(table.get("max_tokens", 400)),
        prompt_style=_style(table.get("prompt_style")) or "chat",
    )


def min_relevance(home: Home, flag: float | None = None) -> float:
    """The relevance a retrieved playbook needs to count for a task: ``--min-relevance`` >
    ``[replay] min_relevance`` in models/models.toml > the calibrated default."""
    table = _models_table(home, "replay")
    raw = flag if flag is not None else table.get("min_relevance", DEFAULT_MIN_RELEVANCE)
    source = "--min-relevance" if flag is not None else "[replay] min_relevance"
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
        raise ConfigError(
            f"{source} {raw!r}: the relevance threshold is a number from 0 to 1",
            hint=f"e.g. --min-relevance {DEFAULT_MIN_RELEVANCE} (the default); 0 never abstains",
        )
    return float(raw)


def gguf_path(home: Home, env: Env, configured: object = None, checkout: Path = CHECKOUT) -> Path:
    """``$DISTILL_GGUF`` > ``[local] path`` (relative to the home) > one file per machine.

    One per machine: the source checkout's ``models/`` (where ``make models`` writes it), else a
    copy the home already holds, else ``$XDG_CACHE_HOME/distill/`` (default ``~/.cache``).
    """
    if env.get(GGUF):
        return Path(env[GGUF]).expanduser()
    if configured:
        path = Path(str(configured)).expanduser()
        return path if path.is_absolute() else home.root / path
    models = checkout / "models"
    if (checkout / "pyproject.toml").is_file() and models.is_dir():
        shared = models / GGUF_NAME
    else:
        shared = machine_cache_dir(env) / GGUF_NAME
    if shared.is_file():
        return shared
    home_copy = home.root / "models" / GGUF_NAME  # a copy an older distill wrote: reuse it
    return home_copy if home_copy.is_file() else shared


def _models_table(home: Home, name: str) -> dict[str, Any]:
    path = home.root / "models" / "models.toml"
    if not path.is_file():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get(name, {})
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return table


def _secret(env: Env, name: str) -> SecretStr | None:
    value = env.get(name)
    return SecretStr(value) if value else None


def _style(value: object) -> PromptStyle | None:
    if value in (None, ""):
        return None
    if value not in ("chat", "completion"):
        raise ConfigError(f"prompt style {value!r}: use chat or completion")
    return "chat" if value == "chat" else "completion"
