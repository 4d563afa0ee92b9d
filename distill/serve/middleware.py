"""ASGI middleware: the guard in front of every route (host, token, content type, body size) and
the request counter. Plain ASGI, so streamed answers pass through untouched.

Nothing here logs a header: the token can only reach a log if a client puts it in the URL.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import orjson
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distill.secrets import scrub
from distill.serve.state import ServeStats

ENDPOINTS = frozenset(
    {
        "/healthz",
        "/v1/replay",
        "/v1/search",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/stats",
    }
)
_ERROR_TYPES = {401: "authentication_error", 404: "not_found_error"}


def api_error(
    status: int,
    message: str,
    *,
    hint: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """An error in the OpenAI shape (``{"error": {"message", "type", ...}}``) plus a hint;
    no configured secret is ever echoed in one."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"message": scrub(message), "type": kind, "param": None, "code": code}
    if hint:
        error["hint"] = scrub(hint)
    body = orjson.dumps({"error": {**error, **(extra or {})}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body without a Content-Length passes the limit."""


class GuardMiddleware:
    """Refuses, before the app sees it: an unknown Host on a loopback server (DNS rebinding),
    a missing or wrong bearer token when one is set (401), a POST that is not JSON (415: a web
    page cannot send JSON to 127.0.0.1 without a CORS preflight, which is never granted), and a
    body over the limit (413)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: SecretStr | None,
        max_body_bytes: int,
        allowed_hosts: frozenset[str] | None,
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token.get_secret_value()}".encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Headers(scope=scope), scope["method"])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._limited(scope, receive, send)

    def _refusal(self, headers: Headers, method: str) -> Response | None:
        if self.allowed_hosts is not None and _hostname(headers.get("host", "")) not in (
            self.allowed_hosts
        ):
            return api_error(
                400,
                "the Host header names another server",
                hint="call this server as 127.0.0.1 or localhost",
                code="host_not_allowed",
            )
        if self._expected is not None and not secrets.compare_digest(
            headers.get("authorization", "").encode(), self._expected
        ):
            return api_error(
                401,
                "missing or wrong bearer token",
                hint="send `Authorization: Bearer $DISTILL_API_TOKEN`",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if method == "POST":
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                return api_error(
                    415,
                    f"the body must be JSON, not {media or 'untyped'}",
                    hint="send `Content-Type: application/json`",
                    code="unsupported_media_type",
                )
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return self._too_large()
        return None

    def _too_large(self) -> Response:
        return api_error(
            413,
            f"the body is over the limit of {self.max_body_bytes:,} bytes",
            hint="send less, or start the server with a larger --max-body-bytes",
            code="body_too_large",
        )

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        too_large = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:  # the app's answer to a body it never fully read is dropped
                await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counted_receive, guarded_send)
        if too_large:
            await self._too_large()(scope, receive, send)


class CountingMiddleware:
    """Counts requests by endpoint and status (outermost, so refusals count too)."""

    def __init__(self, app: ASGIApp, *, stats: ServeStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path = scope["path"]
        if path.startswith("/v1/models/"):
            path = "/v1/models"
        endpoint = path if path in ENDPOINTS else "other"
        self.stats.request_started()
        try:
            await self.app(scope, receive, watched_send)
        finally:
            self.stats.request_done(endpoint, status)


def _hostname(host: str) -> str:
    """``127.0.0.1:8787`` → ``127.0.0.1``; ``[::1]:8787`` → ``::1``."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return (host.rpartition(":")[0] if host.count(":") == 1 else host).lower()
