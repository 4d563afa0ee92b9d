"""Where ``distill mcp`` listens: stdio (what agents launch) or streamable HTTP behind the guard
``distill serve`` uses (loopback by default, bearer token elsewhere, Host check, body limit).

Both drain on SIGTERM: tool calls in flight finish (and are logged), new ones are refused.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import anyio
import anyio.to_thread
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from distill.mcp_server.server import PlaybookServer, ToolCalls, create_mcp_server
from distill.serve.middleware import GuardMiddleware
from distill.serve.server import uvicorn_server
from distill.serve.state import ServeState

MCP_PATH = "/mcp"


def run_stdio(state: ServeState) -> None:
    """Serve MCP on stdin/stdout until the client closes it or SIGTERM/SIGINT arrives."""
    calls = ToolCalls()
    server = create_mcp_server(state, calls)
    try:
        anyio.run(_stdio_until_signal, server, calls)
    finally:
        state.close()


async def _stdio_until_signal(server: PlaybookServer, calls: ToolCalls) -> None:
    async with anyio.create_task_group() as group:

        async def serve() -> None:
            await server.run_stdio_async()
            group.cancel_scope.cancel()  # the client closed stdin: nothing more will come

        async def drain_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    calls.drain()
                    await anyio.to_thread.run_sync(calls.idle.wait)
                    await anyio.sleep(0.2)  # the last answers leave before the pipe closes
                    _exit_soon()
                    group.cancel_scope.cancel()
                    return

        group.start_soon(serve)
        group.start_soon(drain_on_signal)


def _exit_soon(grace: float = 2.0) -> None:
    """Exit once drained even if the SDK's stdin reader is still blocked in a worker thread
    (a blocking read cannot be cancelled, and the client may keep the pipe open). Every call
    has answered and every log line was appended (fsync'd) by then: nothing is lost."""

    def leave() -> None:
        sys.stdout.flush()
        os._exit(0)

    timer = threading.Timer(grace, leave)
    timer.daemon = True
    timer.start()


def http_app(state: ServeState, calls: ToolCalls | None = None) -> ASGIApp:
    """The streamable HTTP app at ``/mcp`` behind ``distill serve``'s guard. Stateless JSON
    answers: every request stands alone, so a stopping server waits for no open stream."""
    server = create_mcp_server(state, calls)
    settings = state.settings
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=True,
        stateless_http=True,
        max_request_body_size=settings.max_body_bytes,
        # the guard below checks Host (loopback) and the token on every request
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=settings.host,
    )
    return GuardMiddleware(
        app,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        allowed_hosts=settings.allowed_hosts(),
    )


def build_http_server(
    state: ServeState, *, logging: dict[str, Any] | None = None, access_log: bool = True
) -> uvicorn.Server:
    """A uvicorn server for MCP over streamable HTTP; ``run()`` serves until SIGTERM/SIGINT,
    then lets requests in flight finish. The caller closes ``state`` afterwards."""
    return uvicorn_server(http_app(state), state.settings, logging=logging, access_log=access_log)
