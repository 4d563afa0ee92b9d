"""A fake OpenAI-compatible model server: a real HTTP server on 127.0.0.1, in a thread.

Each request gets the next step of ``script``, then ``default`` forever:

- ``"echo"``: 401 with every request header in the body (``Authorization`` first), as some
  proxies and test servers do;
- an ``int``: that HTTP status with a small JSON error;
- ``"garbage"``: 200 with a body that is not JSON;
- a ``float``: wait that many seconds (a hung server), then answer ``answer``;
- ``"answer"``: a chat completion of ``answer``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = str | int | float


class FakeUpstream:
    def __init__(self, default: Step = "answer", answer: str = "An answer.") -> None:
        self.default = default
        self.answer = answer
        self.script: deque[Step] = deque()
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    owner.arrivals.append(time.monotonic())
                    step = owner.script.popleft() if owner.script else owner.default
                if isinstance(step, float):
                    owner._stopping.wait(step)
                    step = "answer"
                if step == "echo":
                    # the credentials first, as an error that explains a refusal would put them
                    shown = sorted(self.headers.items(), key=lambda kv: kv[0] != "Authorization")
                    headers = "\n".join(f"{k}: {v}" for k, v in shown)
                    self._send(401, f"unauthorized; you sent:\n{headers}", "text/plain")
                elif isinstance(step, int):
                    self._send(step, json.dumps({"error": {"message": f"scripted {step}"}}))
                elif step == "garbage":
                    self._send(200, b"<html>\x00\xff not json", "text/html")
                else:
                    message = {"role": "assistant", "content": owner.answer}
                    self._send(200, json.dumps({"choices": [{"index": 0, "message": message}]}))

            def do_GET(self) -> None:  # the models list: a scripted status, else one model
                with owner._lock:
                    step = owner.script.popleft() if owner.script else owner.default
                if isinstance(step, int):
                    self._send(step, json.dumps({"error": {"message": f"scripted {step}"}}))
                else:
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "fake"}]}))

            def _send(self, status: int, body: str | bytes, kind: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def requests(self) -> int:
        return len(self.arrivals)

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # a hung handler answers now; its client is long gone
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
