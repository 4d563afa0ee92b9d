"""``distill serve`` and ``distill mcp`` in tests: a real uvicorn server on 127.0.0.1 (a free
port) in a thread, the state it serves, and the requests tests send it."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from distill.home import Home
from distill.replay import ChatModel
from distill.schemas import ReplayRun
from distill.serve import ServeSettings, ServeState, build_server

from .replay import SampleIndex, log_lines

TOKEN = "t0ken-" + secrets.token_hex(16)
MAX_BODY = 16_384
MAX_TASK = 2_000
CHAT = "/v1/chat/completions"


@contextmanager
def serving(server: uvicorn.Server) -> Iterator[str]:
    """``server`` run in a thread on a port bound before it starts; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def running(state: ServeState) -> Iterator[str]:
    """``distill serve`` for ``state``; yields its base URL."""
    with serving(build_server(state)) as url:
        yield url


def make_state(
    root: Path, index: SampleIndex, model: ChatModel, token: str | None = None
) -> ServeState:
    """Serve state for a fresh home at ``root`` over ``index``, answering with ``model``."""
    home = Home(root.resolve())
    home.kb_dir.mkdir(parents=True, exist_ok=True)
    settings = ServeSettings(
        token=SecretStr(token) if token else None, max_body_bytes=MAX_BODY, max_task_chars=MAX_TASK
    )
    return ServeState(home, settings, index_uri=index.uri, local=lambda: model)


def post(url: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kwargs)


def chat_body(task: str) -> dict[str, Any]:
    return {"model": "distill-replay", "messages": [{"role": "user", "content": task}]}


def logged(state: ServeState) -> dict[str, ReplayRun]:
    """The runs in the served home's replay log, by run id."""
    runs = [ReplayRun.model_validate_json(line) for line in log_lines(state.home)]
    return {run.run_id: run for run in runs}
