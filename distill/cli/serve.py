"""`distill serve`: the warm replay service and the grounded OpenAI-compatible endpoint."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from distill import settings as resolve
from distill.cli.common import (
    DeadlineOpt,
    HomeOpt,
    IndexDirOpt,
    MinRelevanceOpt,
    ModelOpt,
    ModelUrlOpt,
    PromptStyleOpt,
    RepoRootOpt,
    err_console,
    handles_errors,
    index_at,
    print_json,
    resolve_home,
)
from distill.errors import ConfigError, DistillError
from distill.replay.config import open_model

if TYPE_CHECKING:
    from pathlib import Path

    from distill.home import Home
    from distill.replay.config import ModelSettings
    from distill.serve import ServeSettings, ServeState
    from distill.settings import IndexSettings


HostOpt = Annotated[
    str,
    typer.Option(
        "--host", help=f"Address to bind. Anything but loopback needs ${resolve.API_TOKEN}."
    ),
]
PortOpt = Annotated[int, typer.Option("--port", help="Port to listen on.")]
MaxBodyOpt = Annotated[int, typer.Option("--max-body-bytes", help="Larger request bodies get 413.")]
MaxTaskOpt = Annotated[
    int, typer.Option("--max-task-chars", help="Longer tasks and queries get 422.")
]
MaxTokensLimitOpt = Annotated[
    int,
    typer.Option(
        "--max-tokens-limit",
        help="The most answer tokens a request may ask for (more gets 422), so one caller "
        "cannot hold the generation queue.",
    ),
]


@handles_errors
def serve_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8787,
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    model: ModelOpt = None,
    model_url: ModelUrlOpt = None,
    prompt_style: PromptStyleOpt = None,
    repo_root: RepoRootOpt = None,
    model_id: Annotated[
        str, typer.Option("--model-id", help="The model name OpenAI clients ask for.")
    ] = "distill-replay",
    generation_slots: Annotated[
        int,
        typer.Option(
            "--generation-slots",
            help="Generations run at once; the rest queue in arrival order. Keep 1 for the "
            "embedded model; raise it for a --model-url server that batches.",
        ),
    ] = 1,
    max_body_bytes: MaxBodyOpt = 1 << 20,
    max_task_chars: MaxTaskOpt = 8000,
    max_tokens_limit: MaxTokensLimitOpt = 1024,
    deadline: DeadlineOpt = None,
    min_relevance_: MinRelevanceOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Once warm, print where it listens and what it loaded as one line of JSON on "
            "stdout (url, auth, model_id, home, index, model, limits).",
        ),
    ] = False,
) -> None:
    """Serve replay warm: the index and the model are loaded once, then answer over HTTP.

    POST /v1/replay, POST /v1/search, POST /v1/chat/completions (OpenAI-compatible, streaming
    too), GET /v1/models, /healthz, /v1/stats. Binds 127.0.0.1; another address needs
    $DISTILL_API_TOKEN, and then every request needs `Authorization: Bearer <token>`.
    SIGTERM or Ctrl-C stops it after the requests in flight finish.
    """
    from distill.serve.server import build_server, log_config

    state = warm_server(
        home,
        index_dir,
        model_url=model_url,
        model=model,
        prompt_style=prompt_style,
        deadline=deadline,
        min_relevance_=min_relevance_,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        max_task_chars=max_task_chars,
        max_tokens_limit=max_tokens_limit,
        repo_root=repo_root,
        model_id=model_id,
        generation_slots=generation_slots,
    )
    settings = state.settings
    loaded = load_warm(state)
    err_console.print(f"serving {settings.model_id} on {listening_at(settings)}", highlight=False)
    if as_json:
        print_json(serving(state, loaded), one_line=True)
    build_server(state, logging=log_config()).run()


def serving(state: ServeState, loaded: dict[str, Any]) -> dict[str, Any]:
    """What ``serve --json`` prints once warm: where it listens and what it loaded."""
    settings = state.settings
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return {
        "url": f"http://{host}:{settings.port}",
        "auth": "bearer" if settings.token else "none",
        "model_id": settings.model_id,
        "home": str(state.home.root),
        **loaded,
        "generation_slots": settings.generation_slots,
        "deadline_s": settings.deadline,
        "min_relevance": settings.min_relevance,
        "max_tokens_limit": settings.max_tokens_limit,
    }


def listening_at(settings: ServeSettings, path: str = "") -> str:
    """``http://host:port<path> (auth)``, as a warm server announces itself on stderr."""
    auth = "bearer token required" if settings.token else "no token: loopback only"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}{path} ({auth})"


def warm_server(
    home: Path | None,
    index_dir: str | None,
    *,
    model_url: str | None,
    model: str | None,
    prompt_style: str | None,
    deadline: float | None,
    min_relevance_: float | None,
    **fields: Any,
) -> ServeState:
    """The warm state of a server (``serve`` and ``mcp``): the home, the local model, the
    server's flags, the token from the environment and the replay settings resolved as
    ``distill replay`` resolves them; checked before anything loads."""
    from distill.serve import ServeSettings

    resolved, _ = resolve_home(home)
    model_settings = resolve.local_model(
        resolved, os.environ, url=model_url, model=model, prompt_style=prompt_style
    )
    settings = ServeSettings(
        token=resolve.serve_token(os.environ),
        max_tokens=model_settings.max_tokens,
        deadline=resolve.replay_deadline(deadline, os.environ),
        min_relevance=resolve.min_relevance(resolved, min_relevance_),
        **fields,
    )
    return warm_state(resolved, settings, model_settings, index_at(resolved, index_dir))


def warm_state(
    resolved: Home, settings: ServeSettings, model_settings: ModelSettings, index: IndexSettings
) -> ServeState:
    """The state a warm server holds (``serve`` and ``mcp``), after the settings are checked:
    a refused bind costs nothing."""
    from distill.serve import ServeState, check_settings

    check_settings(settings)
    if settings.generation_slots > 1 and not model_settings.url:
        raise ConfigError(
            "the embedded model runs one generation at a time",
            hint="drop --generation-slots, or serve a model server with --model-url",
        )
    escalation = resolve.escalation_model(resolved, os.environ)
    return ServeState(
        resolved,
        settings,
        index_uri=index.uri,
        local=lambda: open_model(model_settings),
        escalation=(lambda: open_model(escalation)) if escalation else None,
        minilm_path=index.minilm_path,
    )


def load_warm(state: ServeState, *, model: bool = True) -> dict[str, Any]:
    """Open the index (and load the model unless ``model`` is False), saying so on stderr;
    return what was loaded."""
    started = time.perf_counter()
    with err_console.status("loading the index and the model…" if model else "opening the index…"):
        retriever = state.retriever()
        loaded = "loaded on the first replay"
        if model:
            try:
                loaded = state.local_model().name
            except DistillError as err:  # search and dry runs still work; replays say why not
                loaded = f"not loaded ({err})"
    err_console.print(
        f"index v{retriever.version} ({retriever.manifest.rows} rows, "
        f"{retriever.embedder.name}); model {escape(loaded)}; "
        f"loaded in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )
    index = {
        "uri": state.index_uri,
        "version": retriever.version,
        "rows": retriever.manifest.rows,
        "embedder": retriever.embedder.name,
    }
    return {"index": index, "model": loaded}
