"""``FakeUpstream``: a fake OpenAI-compatible model server, a real HTTP server on 127.0.0.1 (a
free port) in a thread, that records every request.

Each request gets the next step of ``script``, then ``default`` forever:

- ``ANSWER`` (``"answer"``): a completion of ``answer`` (chat or text, by the path);
- any other ``str`` but the two below: a completion of that text;
- ``"echo"``: 401 with every request header in the body (``Authorization`` first), as some
  proxies and test servers do;
- ``"garbage"``: 200 with a body that is not JSON;
- an ``int``: that HTTP status with a small JSON error;
- a ``float``: wait that many seconds (a hung or slow server), then answer ``answer``.

A ``GET`` (the models list) takes a step too: a scripted status, else one model.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = str | int | float
ANSWER, ECHO, GARBAGE = "answer", "echo", "garbage"
_USAGE = {"usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]  # the JSON body; {} when there is none
    at: float  # time.monotonic() on arrival


class FakeUpstream:
    def __init__(self, default: Step = ANSWER, answer: str = "An answer.") -> None:
        self.default = default
        self.answer = answer
        self.script: deque[Step] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def next_step(self, request: RecordedRequest) -> Step:
        with self._lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else self.default

    def wait(self, seconds: float) -> None:
        """A hung handler's pause; cut short when the server stops (its client is long gone)."""
        self._stopping.wait(seconds)

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is no error of the server's


def _handler_for(owner: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            step = owner.next_step(self._recorded("POST"))
            if isinstance(step, float):
                owner.wait(step)
                step = ANSWER
            if step == ECHO:
                # the credentials first, as an error that explains a refusal would put them
                shown = sorted(self.headers.items(), key=lambda kv: kv[0] != "Authorization")
                headers = "\n".join(f"{k}: {v}" for k, v in shown)
                self._send(401, f"unauthorized; you sent:\n{headers}", "text/plain")
            elif isinstance(step, int):
                self._send(step, json.dumps({"error": {"message": f"scripted {step}"}}))
            elif step == GARBAGE:
                self._send(200, b"<html>\x00\xff not json", "text/html")
            else:
                text = owner.answer if step == ANSWER else step
                self._send(200, json.dumps(self._completion(text)))

        def do_GET(self) -> None:
            step = owner.next_step(self._recorded("GET"))
            if isinstance(step, int):
                self._send(step, json.dumps({"error": {"message": f"scripted {step}"}}))
            else:
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake"}]}))

        def _recorded(self, method: str) -> RecordedRequest:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            return RecordedRequest(method, self.path, headers, body, time.monotonic())

        def _completion(self, text: str) -> dict[str, Any]:
            if self.path.endswith("/chat/completions"):
                message = {"role": "assistant", "content": text}
                return {"choices": [{"index": 0, "message": message}], **_USAGE}
            return {"choices": [{"index": 0, "text": text}], **_USAGE}

        def _send(self, status: int, body: str | bytes, kind: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean

    return Handler


def closed_port() -> int:
    """A port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
