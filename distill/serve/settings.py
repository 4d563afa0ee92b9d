"""What a server is allowed to do: where it binds, who may call it, how big a request may be."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from distill.errors import ConfigError
from distill.index.relevance import DEFAULT_MIN_RELEVANCE
from distill.replay.limits import DEFAULT_DEADLINE_S
from distill.replay.remote import TOKEN_ENV

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_MODEL_ID = "distill-replay"
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ServeSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: SecretStr | None = None
    max_body_bytes: int = 1 << 20
    max_task_chars: int = 8000
    model_id: str = DEFAULT_MODEL_ID
    generation_slots: int = 1
    max_tokens: int = 200
    max_tokens_limit: int = 1024  # a request may ask for more, never beyond this
    repo_root: Path | None = None
    deadline: float = DEFAULT_DEADLINE_S  # seconds of model calls per replay, retries included
    min_relevance: float = DEFAULT_MIN_RELEVANCE  # below it for every hit, a replay abstains

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def allowed_hosts(self) -> frozenset[str] | None:
        """Host header names accepted: on loopback only loopback names (no DNS rebinding)."""
        if not self.loopback:
            return None
        return LOOPBACK_NAMES | {self.host.lower().strip("[]")}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_settings(settings: ServeSettings) -> None:
    """Refuse to start a server that would be open to the network, or nonsensical limits."""
    token = settings.token.get_secret_value() if settings.token else ""
    if not settings.loopback and not token:
        raise ConfigError(
            f"binding {settings.host} exposes replay beyond this machine without a token",
            hint=f"set {TOKEN_ENV} (e.g. `export {TOKEN_ENV}=$(python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')`), or bind 127.0.0.1",
        )
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} is {len(token)} characters; use at least {MIN_TOKEN_CHARS}",
            hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    if settings.max_body_bytes < 1024 or settings.max_task_chars < 1:
        raise ConfigError("--max-body-bytes must be ≥ 1024 and --max-task-chars ≥ 1")
    if settings.max_tokens_limit < 1:
        raise ConfigError("--max-tokens-limit must be ≥ 1")
    if not 1 <= settings.generation_slots <= 64:
        raise ConfigError("--generation-slots must be between 1 and 64")
