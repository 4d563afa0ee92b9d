"""`distill mcp`: the playbooks, replay and the outcome loop as an MCP server."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

import typer

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
)
from distill.cli.serve import (
    HostOpt,
    MaxBodyOpt,
    MaxTaskOpt,
    MaxTokensLimitOpt,
    PortOpt,
    listening_at,
    load_warm,
    warm_server,
)
from distill.errors import DistillError

MCP_INSTALL = "pip install 'distill[mcp]'"


@handles_errors
def mcp_command(
    transport: Annotated[
        Literal["stdio", "streamable-http"],
        typer.Option(
            "--transport",
            help="stdio (what an agent launches) or streamable-http (at /mcp, with the rules "
            "of `distill serve`).",
        ),
    ] = "stdio",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8788,
    home: HomeOpt = None,
    index_dir: IndexDirOpt = None,
    model: ModelOpt = None,
    model_url: ModelUrlOpt = None,
    prompt_style: PromptStyleOpt = None,
    repo_root: RepoRootOpt = None,
    max_body_bytes: MaxBodyOpt = 1 << 20,
    max_task_chars: MaxTaskOpt = 8000,
    max_tokens_limit: MaxTokensLimitOpt = 1024,
    deadline: DeadlineOpt = None,
    min_relevance_: MinRelevanceOpt = None,
) -> None:
    """Serve the team's playbooks to agents over MCP (Model Context Protocol).

    Tools: search_playbooks, get_playbook, replay (the `distill replay` path, logged the same
    way; dry_run returns the bundle) and record_outcome (an observer_reviews row that accepts a
    verified replay). Resources playbook://<id>; prompt ground_task. stdio by default:
    `claude mcp add distill -- distill mcp --home <home>`. With --transport streamable-http it
    binds 127.0.0.1; another address needs $DISTILL_API_TOKEN, then sent as a bearer token on
    every request. The index is opened once (updates are picked up), the model loaded once
    (stdio: at the first replay); SIGTERM lets tool calls in flight finish.
    """
    if importlib.util.find_spec("mcp") is None:
        raise DistillError("distill mcp needs the MCP Python SDK", hint=MCP_INSTALL)
    from distill.mcp_server.transport import build_http_server, run_stdio
    from distill.serve.server import log_config

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
    )
    if transport == "stdio":
        load_warm(state, model=False)  # an agent waits on the handshake: the model loads later
        run_stdio(state)
        return
    load_warm(state)
    err_console.print(f"MCP on {listening_at(state.settings, '/mcp')}", highlight=False)
    try:
        build_http_server(state, logging=log_config()).run()
    finally:
        state.close()
