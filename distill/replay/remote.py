"""Replay through a running ``distill serve``: the client that sends a ReplayRequest.

Lives beside the local replay (not in ``distill.serve``) so that ``distill replay --server URL``
imports neither FastAPI nor torch: a warm server is the point.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr, ValidationError

from distill.errors import DistillError
from distill.replay.clients import RetryPolicy, public_url
from distill.schemas import ReplayRequest, ReplayRun
from distill.secrets import scrub

TOKEN_ENV = "DISTILL_API_TOKEN"  # read by distill.settings.serve_token; named here for hints


class ServerError(DistillError):
    """A call to ``distill serve`` failed: carries status, URL and attempt count."""

    def __init__(
        self, message: str, *, url: str, status: int | None, attempts: int, hint: str | None = None
    ) -> None:
        super().__init__(
            scrub(f"{message} (url {url}, status {status}, attempt {attempts})"),
            hint=scrub(hint or "check `distill serve` is running at that URL"),
        )
        self.url, self.status, self.attempts = url, status, attempts


def replay_remote(
    server: str,
    request: ReplayRequest,
    *,
    token: SecretStr | None = None,
    read_timeout: float = 900.0,
    retry: RetryPolicy | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ReplayRun:
    """POST the request to ``<server>/v1/replay`` and return the ReplayRun the server logged.

    Only a refused connection is retried (the request never arrived, so nothing was logged);
    a timeout is not, since the server may have run and logged the replay.
    """
    url = server.rstrip("/").removesuffix("/v1") + "/v1/replay"
    shown = public_url(url)
    retry = retry or RetryPolicy()
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    timeout = httpx.Timeout(read_timeout, connect=5.0)
    body = request.model_dump(exclude_defaults=True)
    with httpx.Client(headers=headers, timeout=timeout, transport=transport) as http:
        for attempt in range(1, retry.attempts + 1):
            try:
                response = http.post(url, json=body)
            except httpx.ConnectError as err:
                if attempt == retry.attempts:
                    raise ServerError(
                        f"cannot reach the server: {err}",
                        url=shown,
                        status=None,
                        attempts=attempt,
                        hint="start it with `distill serve`, or drop --server",
                    ) from err
                retry.sleep(retry.delay(attempt, None))
                continue
            except httpx.TimeoutException as err:
                raise ServerError(
                    f"{type(err).__name__}: the server did not answer in time",
                    url=shown,
                    status=None,
                    attempts=attempt,
                    hint="the replay may have run and been logged; check /v1/stats",
                ) from err
            return _run_from(response, shown, attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def _run_from(response: httpx.Response, url: str, attempt: int) -> ReplayRun:
    if response.status_code >= 400:
        message, hint = _error_of(response)
        raise ServerError(
            f"server refused the request: {message}",
            url=url,
            status=response.status_code,
            attempts=attempt,
            hint=hint,
        )
    try:
        return ReplayRun.model_validate_json(response.content)
    except ValidationError as err:
        raise ServerError(
            "the answer is not a replay_run.v1",
            url=url,
            status=response.status_code,
            attempts=attempt,
            hint="is that URL a `distill serve` of the same version?",
        ) from err


def _error_of(response: httpx.Response) -> tuple[str, str | None]:
    """The server's ``{"error": {"message", "hint"}}``, or the start of whatever it sent."""
    try:
        error = response.json().get("error") or {}
        return str(error["message"]), error.get("hint")
    except (ValueError, AttributeError, KeyError, TypeError):
        return scrub(response.text)[:200], None  # scrubbed whole: a cut secret would survive
