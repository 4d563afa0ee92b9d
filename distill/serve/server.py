"""The uvicorn server around the app: graceful on SIGTERM/SIGINT, every log line on stderr."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
import uvicorn.config
from starlette.types import ASGIApp

from distill.serve.app import create_app
from distill.serve.settings import ServeSettings
from distill.serve.state import ServeState


def log_config() -> dict[str, Any]:
    """uvicorn's logging with the access log on stderr too (stdout is for results), every
    record scrubbed of configured secrets (a traceback may quote an upstream's answer)."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config.setdefault("filters", {})["scrub"] = {"()": "distill.secrets.ScrubbingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("scrub")
    return config


def build_server(
    state: ServeState, *, logging: dict[str, Any] | None = None, access_log: bool = True
) -> uvicorn.Server:
    """A server for ``state``; ``server.run()`` serves until SIGTERM/SIGINT (or ``should_exit``),
    then stops accepting, lets every request in flight finish, and closes the queue.

    ``logging=None`` leaves the logging setup alone (tests capture it); the CLI passes
    :func:`log_config`.
    """
    return uvicorn_server(create_app(state), state.settings, logging=logging, access_log=access_log)


def uvicorn_server(
    app: ASGIApp, settings: ServeSettings, *, logging: dict[str, Any] | None, access_log: bool
) -> uvicorn.Server:
    """The uvicorn server every distill HTTP app runs in (``serve``, ``mcp``): graceful on
    SIGTERM/SIGINT, requests in flight finish."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=logging,
        access_log=access_log,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=None,  # in-flight replays finish; nothing is cut mid-log
    )
    return uvicorn.Server(config)
