"""The FastAPI app of ``distill serve``: replay, search, an OpenAI-compatible chat endpoint,
health and stats, over one warm :class:`ServeState`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse

from distill import __version__
from distill.errors import DistillError
from distill.index.search import search_payload
from distill.replay.clients import ModelError
from distill.replay.limits import TaskTooLong
from distill.replay.run import ReplayOptions
from distill.schemas import ReplayRequest
from distill.secrets import scrub
from distill.serve.chat import ChatAnswer, ChatCompletionRequest, model_card, model_list
from distill.serve.middleware import CountingMiddleware, GuardMiddleware, api_error
from distill.serve.state import ServeState

router = APIRouter()


class ApiError(Exception):
    """A request the server refuses, with the status and hint it answers with."""

    def __init__(
        self, status: int, message: str, *, hint: str | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.code = status, message, hint, code or None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    top_k: int = Field(default=8, ge=1, le=100)
    mode: Literal["hybrid", "vector", "fts"] = "hybrid"
    category: str | None = Field(default=None, max_length=100)
    source: str | None = Field(default=None, max_length=100)


def _state(request: Request) -> ServeState:
    return cast(ServeState, request.app.state.serve)


State = Annotated[ServeState, Depends(_state)]


def _json(payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = scrub(orjson.dumps(payload).decode())  # no configured secret leaves in an answer
    return Response(body, media_type="application/json", headers=headers)


def _checked_task(state: ServeState, text: str, field: str) -> str:
    limit = state.settings.max_task_chars
    if len(text) > limit:
        raise ApiError(
            422,
            f"{field}: {len(text):,} characters, over the limit of {limit:,}",
            hint="send a shorter task, or start the server with a larger --max-task-chars",
            code="task_too_long",
        )
    if not text.strip():
        raise ApiError(422, f"{field}: empty", code="task_empty")
    return text


def _checked_max_tokens(state: ServeState, value: int | None) -> None:
    """One caller must not hold the single generation queue with a huge answer."""
    limit = state.settings.max_tokens_limit
    if value is not None and value > limit:
        raise ApiError(
            422,
            f"max_tokens: {value:,} is over this server's limit of {limit:,}",
            hint="ask for fewer, or start the server with a larger --max-tokens-limit",
            code="max_tokens_too_large",
        )


@router.post("/v1/replay")
async def replay_endpoint(body: ReplayRequest, state: State) -> Response:
    """The ReplayRun, logged exactly as ``distill replay`` logs it."""
    task = _checked_task(state, body.task, "task")
    _checked_max_tokens(state, body.max_tokens)
    options = ReplayOptions.from_request(
        body,
        max_tokens=state.settings.max_tokens,
        repo_root=state.settings.repo_root,
        deadline=state.settings.deadline,
        min_relevance=state.settings.min_relevance,
    )
    run = await state.replay(task, options)
    return Response(scrub(run.model_dump_json(by_alias=True)), media_type="application/json")


@router.post("/v1/search")
async def search_endpoint(body: SearchRequest, state: State) -> Response:
    query = _checked_task(state, body.query, "query")
    version, hits = await state.search(
        query, mode=body.mode, top_k=body.top_k, category=body.category, source=body.source
    )
    return _json(search_payload(version, body.mode, hits))


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, state: State) -> Response:
    """Grounded, gated, logged; the cited ids and the verdict ride in the ``distill`` field. An
    abstained replay is a 200 too: verdict ``abstained``, a content saying no grounded answer
    exists."""
    if body.model != state.settings.model_id:
        raise ApiError(
            404,
            f"model {body.model!r} is not served here; this server serves "
            f"{state.settings.model_id!r}",
            hint="GET /v1/models lists it",
            code="model_not_found",
        )
    task = body.task()
    if task is None:
        raise ApiError(422, "messages: no user message, so no task", code="no_user_message")
    _checked_max_tokens(state, body.answer_limit())
    request = ReplayRequest(
        task=_checked_task(state, task, "messages: the last user message"),
        max_tokens=body.answer_limit(),
        **body.distill.model_dump(),
    )
    options = ReplayOptions.from_request(
        request,
        max_tokens=state.settings.max_tokens,
        repo_root=state.settings.repo_root,
        deadline=state.settings.deadline,
        min_relevance=state.settings.min_relevance,
    )
    run = await state.replay(task, options)
    final = run.attempts[-1] if run.attempts else None
    if final is not None and final.error and not final.response:
        raise ApiError(
            502,
            f"the model failed: {final.error}",
            hint=f"the failed run is logged as {run.run_id}",
            code="model_error",
        )
    answer = ChatAnswer(run, state.settings.model_id, options.max_tokens)
    headers = {"X-Distill-Run-Id": run.run_id, "X-Distill-Verdict": run.verdict}
    if not body.stream:
        return _json(answer.completion(), headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[bytes]:
        for event in answer.chunks(include_usage=include_usage):
            yield event

    headers |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/v1/models")
async def models_endpoint(state: State) -> Response:
    return _json(model_list(state.settings.model_id, state.stats.started_at))


@router.get("/v1/models/{model_id}")
async def model_endpoint(model_id: str, state: State) -> Response:
    if model_id != state.settings.model_id:
        raise ApiError(404, f"model {model_id!r} is not served here", code="model_not_found")
    return _json(model_card(model_id, state.stats.started_at))


@router.get("/healthz")
async def health_endpoint(state: State) -> Response:
    retriever = await run_in_threadpool(state.retriever)
    model = state.model_loaded
    return _json(
        {
            "status": "ok",
            "version": __version__,
            "index": {
                "uri": state.index_uri,
                "version": retriever.version,
                "rows": retriever.manifest.rows,
                "embedder": retriever.manifest.embedder.get("name"),
            },
            "model": {
                "id": state.settings.model_id,
                "loaded": model is not None,
                "name": model.name if model else None,
                "endpoint": model.endpoint if model else None,
                "prompt_style": model.prompt_style if model else None,
            },
        }
    )


@router.get("/v1/stats")
async def stats_endpoint(state: State) -> Response:
    return _json({**state.stats.snapshot(), "queue_depth": state.queue.depth})


def create_app(state: ServeState) -> FastAPI:
    """The app over one warm state; the state's queue is closed when the server stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(state.close)

    app = FastAPI(title="distill serve", version=__version__, lifespan=lifespan)
    app.state.serve = state
    app.include_router(router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DistillError, _distill_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    settings = state.settings
    app.add_middleware(
        GuardMiddleware,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        allowed_hosts=settings.allowed_hosts(),
    )
    app.add_middleware(CountingMiddleware, stats=state.stats)  # outermost: counts refusals too
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    err = cast(ApiError, exc)
    return api_error(err.status, err.message, hint=err.hint, code=err.code)


async def _validation_error(request: Request, exc: Exception) -> Response:
    errors = cast(RequestValidationError, exc).errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        detail = (bad_json.get("ctx") or {}).get("error", "invalid JSON")
        return api_error(400, f"the body is not valid JSON: {detail}", code="invalid_json")
    lines = [
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
        for e in errors
    ]
    return api_error(422, "; ".join(lines), code="invalid_request")


async def _distill_error(request: Request, exc: Exception) -> Response:
    """Expected failures past validation: a task over the model's context is the caller's
    (422); a model server that failed is a bad gateway (502); a missing index or an unusable
    model is the server's state (503)."""
    err = cast(DistillError, exc)
    if isinstance(err, TaskTooLong):
        return api_error(422, str(err), hint=err.hint or None, code="task_too_long")
    status = 502 if isinstance(err, ModelError) else 503
    return api_error(status, str(err), hint=err.hint or None, code=type(err).__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (404 no such route, 405 wrong method) in the same shape."""
    err = cast(StarletteHTTPException, exc)
    hint = "the endpoints: /v1/replay, /v1/search, /v1/chat/completions, /v1/models, /healthz, "
    hint += "/v1/stats"
    headers = dict(err.headers) if err.headers else None
    return api_error(err.status_code, str(err.detail), hint=hint, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug or a broken home (say, an unwritable replay log): a 500 that says what; the
    traceback goes to the server's log (Starlette re-raises after this answer is sent)."""
    return api_error(
        500,
        f"internal error: {type(exc).__name__}: {exc}",
        hint="the server log has the traceback",
        code="internal_error",
    )
