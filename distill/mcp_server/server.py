"""The MCP server: four tools, ``playbook://<id>`` resources and one prompt over one warm
:class:`~distill.serve.ServeState` (the index and model ``distill serve`` holds, its queue)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ListResourcesResult, PaginatedRequestParams, ToolAnnotations
from mcp_types import Resource as MCPResource
from pydantic import Field

from distill import __version__
from distill.errors import DistillError
from distill.mcp_server import descriptions as say
from distill.mcp_server.models import (
    OutcomeResult,
    Playbook,
    ReplayResult,
    SearchResult,
    hit_result,
    replay_result,
    scrubbed,
)
from distill.mcp_server.playbooks import get_playbook, playbook_ids, record_outcome
from distill.replay.run import ReplayOptions
from distill.schemas import ReplayRequest
from distill.secrets import scrub
from distill.serve.state import ServeState

T = TypeVar("T")
PAGE_SIZE = 100
Short = Annotated[str, Field(min_length=1, max_length=200)]


class DrainingError(DistillError):
    """The server is stopping: it finishes what it has, and takes nothing new."""


class ToolCalls:
    """Tool calls in flight, so a stopping server can wait for them and refuse new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.draining = False
        self.idle = threading.Event()
        self.idle.set()

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        with self._lock:
            if self.draining:
                raise ToolError("distill mcp is shutting down — hint: start it again, then retry")
            self.in_flight += 1
            self.idle.clear()
        try:
            return await call()
        except DistillError as err:  # an expected failure: its one line and its hint
            hint = f" — hint: {err.hint}" if err.hint else ""
            raise ToolError(scrub(f"{err}{hint}")) from err
        finally:
            with self._lock:
                self.in_flight -= 1
                if self.in_flight == 0:
                    self.idle.set()

    def drain(self) -> None:
        with self._lock:
            self.draining = True


class PlaybookServer(MCPServer[Any]):
    """MCPServer whose ``resources/list`` pages through every published playbook."""

    def __init__(self, state: ServeState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    async def _handle_list_resources(  # the SDK's own lists every resource in one answer
        self, ctx: Any, params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        ids = await anyio.to_thread.run_sync(lambda: playbook_ids(self.state.retriever()))
        start = _cursor(params.cursor if params else None)
        page = ids[start : start + PAGE_SIZE]
        more = start + PAGE_SIZE < len(ids)
        return ListResourcesResult(
            resources=[
                MCPResource(
                    uri=f"playbook://{playbook_id}",
                    name=playbook_id,
                    title=scrub(title)[:200] or None,
                    mime_type="application/json",
                )
                for playbook_id, title in page
            ],
            next_cursor=str(start + PAGE_SIZE) if more else None,
        )


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ToolError(f"not a cursor this server gave: {cursor!r}")
    return int(cursor)


def create_mcp_server(state: ServeState, calls: ToolCalls | None = None) -> PlaybookServer:
    """The MCP server over ``state``; ``calls`` counts tool calls (the transports drain it)."""
    calls = calls or ToolCalls()
    server = PlaybookServer(
        state,
        name="distill",
        title="distill playbooks",
        instructions=say.INSTRUCTIONS,
        version=__version__,
    )
    _add_tools(server, state, calls)
    _add_resources(server, state)
    server.prompt(name="ground_task", title="Ground this task in the team's playbooks")(
        say.ground_task
    )
    return server


def _add_tools(server: MCPServer[Any], state: ServeState, calls: ToolCalls) -> None:
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(description=say.SEARCH, annotations=read_only)
    async def search_playbooks(
        query: Annotated[str, Field(min_length=1, max_length=8000)],
        top_k: Annotated[int, Field(ge=1, le=50)] = 8,
        mode: Literal["hybrid", "vector", "fts"] = "hybrid",
        category: Short | None = None,
        source: Short | None = None,
    ) -> SearchResult:
        async def call() -> SearchResult:
            _check_task(state, query, "query")
            version, hits = await state.search(
                query, mode=mode, top_k=top_k, category=category, source=source
            )
            found = [hit_result(hit, rank) for rank, hit in enumerate(hits, 1)]
            return scrubbed(SearchResult(index_version=version, mode=mode, hits=found))

        return await calls.run(call)

    @server.tool(name="get_playbook", description=say.GET, annotations=read_only)
    async def get_playbook_tool(
        id: Annotated[str, Field(min_length=1, max_length=500)],
    ) -> Playbook:
        async def call() -> Playbook:
            return scrubbed(await _playbook(state, id))

        return await calls.run(call)

    @server.tool(description=say.REPLAY)
    async def replay(
        task: Annotated[str, Field(min_length=1)],
        task_id: Short | None = None,
        top_k: Annotated[int, Field(ge=1, le=50)] = 8,
        no_retrieval: bool = False,
        dry_run: bool = False,
        max_tokens: Annotated[int | None, Field(ge=1, le=8192)] = None,
    ) -> ReplayResult:
        async def call() -> ReplayResult:
            _check_task(state, task, "task")
            request = ReplayRequest(
                task=task,
                task_id=task_id,
                top_k=top_k,
                no_retrieval=no_retrieval,
                dry_run=dry_run,
                max_tokens=max_tokens,
            )
            _check_max_tokens(state, max_tokens)
            settings = state.settings
            options = ReplayOptions.from_request(
                request,
                max_tokens=settings.max_tokens,
                repo_root=settings.repo_root,
                deadline=settings.deadline,
                min_relevance=settings.min_relevance,
            )
            return scrubbed(replay_result(await state.replay(task, options)))

        return await calls.run(call)

    @server.tool(
        name="record_outcome",
        description=say.RECORD,
        annotations=ToolAnnotations(idempotent_hint=False, open_world_hint=False),
    )
    async def record_outcome_tool(
        verdict: Literal["accept", "reject"],
        run_id: Short | None = None,
        task_id: Short | None = None,
        notes: Annotated[str | None, Field(max_length=4000)] = None,
    ) -> OutcomeResult:
        async def call() -> OutcomeResult:
            def write() -> OutcomeResult:
                return record_outcome(
                    state.home, run_id=run_id, task_id=task_id, verdict=verdict, notes=notes
                )

            return scrubbed(await anyio.to_thread.run_sync(write))

        return await calls.run(call)


async def _playbook(state: ServeState, playbook_id: str) -> Playbook:
    return await anyio.to_thread.run_sync(
        lambda: get_playbook(state.home, state.retriever(), playbook_id)
    )


def _add_resources(server: MCPServer[Any], state: ServeState) -> None:
    @server.resource(
        "playbook://{playbook_id}",
        name="playbook",
        description="One published playbook as JSON (the get_playbook result).",
        mime_type="application/json",
    )
    async def playbook_resource(playbook_id: str) -> str:
        try:
            found = await _playbook(state, playbook_id)
        except DistillError as err:
            raise ResourceError(scrub(f"{err} — hint: {err.hint}")) from err
        return scrub(orjson.dumps(found.model_dump(mode="json")).decode())


def _check_task(state: ServeState, text: str, field: str) -> None:
    limit = state.settings.max_task_chars
    if len(text) > limit:
        raise DistillError(
            f"{field}: {len(text):,} characters, over the limit of {limit:,}",
            hint="send a shorter one, or start the server with a larger --max-task-chars",
        )
    if not text.strip():
        raise DistillError(f"{field}: empty", hint=f"pass a {field}")


def _check_max_tokens(state: ServeState, value: int | None) -> None:
    limit = state.settings.max_tokens_limit
    if value is not None and value > limit:
        raise DistillError(
            f"max_tokens: {value:,} is over this server's limit of {limit:,}",
            hint="ask for fewer, or start the server with a larger --max-tokens-limit",
        )
