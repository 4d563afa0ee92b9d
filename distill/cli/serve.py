"""`distill serve`: the warm replay service and the grounded OpenAI-compatible endpoint."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from distill.cli.common import (
    HomeOpt,
    ModelOpt,
    ModelUrlOpt,
    PromptStyleOpt,
    RepoRootOpt,
    err_console,
    handles_errors,
    resolve_home,
)
from distill.cli.index import IndexDirOpt
from distill.cli.replay import DeadlineOpt, MinRelevanceOpt
from distill.errors import ConfigError, DistillError
from distill.index.store import resolve_index_uri
from distill.replay.config import (
    escalation_settings,
    local_settings,
    min_relevance,
    open_model,
    replay_deadline,
)
from distill.replay.remote import TOKEN_ENV, token_from_env


@handles_errors
def serve_command(
    host: Annotated[
        str,
        typer.Option("--host", help=f"Address to bind. Anything but loopback needs ${TOKEN_ENV}."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8787,
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
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Larger request bodies get 413.")
    ] = 1 << 20,
    max_task_chars: Annotated[
        int, typer.Option("--max-task-chars", help="Longer tasks and queries get 422.")
    ] = 8000,
    max_tokens_limit: Annotated[
        int,
        typer.Option(
            "--max-tokens-limit",
            help="The most answer tokens a request may ask for (more gets 422), so one caller "
            "cannot hold the generation queue.",
        ),
    ] = 1024,
    deadline: DeadlineOpt = None,
    min_relevance_: MinRelevanceOpt = None,
) -> None:
    """Serve replay warm: the index and the model are loaded once, then answer over HTTP.

    POST /v1/replay, POST /v1/search, POST /v1/chat/completions (OpenAI-compatible, streaming
    too), GET /v1/models, /healthz, /v1/stats. Binds 127.0.0.1; another address needs
    $DISTILL_API_TOKEN, and then every request needs `Authorization: Bearer <token>`.
    SIGTERM or Ctrl-C stops it after the requests in flight finish.
    """
    from distill.serve import ServeSettings, ServeState, build_server, check_settings
    from distill.serve.server import log_config

    resolved, _ = resolve_home(home)
    model_settings = local_settings(resolved, url=model_url, model=model, prompt_style=prompt_style)
    settings = ServeSettings(
        host=host,
        port=port,
        token=token_from_env(),
        max_body_bytes=max_body_bytes,
        max_task_chars=max_task_chars,
        model_id=model_id,
        generation_slots=generation_slots,
        max_tokens=model_settings.max_tokens,
        max_tokens_limit=max_tokens_limit,
        repo_root=repo_root,
        deadline=replay_deadline(deadline),
        min_relevance=min_relevance(resolved, min_relevance_),
    )
    check_settings(settings)  # before anything is loaded: a refused bind costs nothing
    if generation_slots > 1 and not model_settings.url:
        raise ConfigError(
            "the embedded model runs one generation at a time",
            hint="drop --generation-slots, or serve a model server with --model-url",
        )
    escalation = escalation_settings(resolved)
    state = ServeState(
        resolved,
        settings,
        index_uri=resolve_index_uri(index_dir, resolved.index_dir),
        local=lambda: open_model(model_settings),
        escalation=(lambda: open_model(escalation)) if escalation else None,
    )
    started = time.perf_counter()
    with err_console.status("loading the index and the model…"):
        retriever = state.retriever()
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
    auth = "bearer token required" if settings.token else "no token: loopback only"
    shown = f"[{host}]" if ":" in host else host
    err_console.print(
        f"serving {settings.model_id} on http://{shown}:{port} ({auth})", highlight=False
    )
    build_server(state, logging=log_config()).run()
