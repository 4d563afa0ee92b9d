"""Checks of the configured model servers: reachable, and do they accept the key.

A models-list call (``GET /v1/models``), else a ``HEAD`` on the URL. The key goes in the
``Authorization`` header and nowhere else: every detail is scrubbed before it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from distill.doctor.checks import DoctorCheck, failed, passed, warned
from distill.errors import DistillError
from distill.home import Home
from distill.replay.config import ModelSettings
from distill.secrets import scrub
from distill.settings import API_KEY, ESCALATION_API_KEY, escalation_model, local_model

TIMEOUT_S = 5.0


def check_model_endpoint(home: Home, env: Mapping[str, str]) -> DoctorCheck:
    try:
        settings = local_model(home, env)
    except DistillError as err:
        return failed("model endpoint", str(err), err.hint or "fix models/models.toml")
    if not settings.url:
        return passed("model endpoint", "none configured: replay uses the embedded GGUF")
    return probe_endpoint("model endpoint", settings, API_KEY)


def check_escalation_endpoint(home: Home, env: Mapping[str, str]) -> DoctorCheck:
    try:
        settings = escalation_model(home, env)
    except DistillError as err:
        return failed("escalation endpoint", str(err), err.hint or "fix models/models.toml")
    if settings is None or not settings.url:
        return passed("escalation endpoint", "none configured: replay never escalates")
    return probe_endpoint("escalation endpoint", settings, ESCALATION_API_KEY)


def probe_endpoint(name: str, settings: ModelSettings, key_env: str) -> DoctorCheck:
    url = str(settings.url).rstrip("/")
    base = url.removesuffix("/v1")
    headers = {}
    if settings.api_key is not None:
        headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    try:
        with httpx.Client(timeout=TIMEOUT_S, headers=headers) as client:
            listed = client.get(f"{base}/v1/models")
            status = listed.status_code
            if status in (404, 405):
                status = client.head(url).status_code
                if status < 500:
                    return warned(
                        name, f"{url} answers (HEAD {status}) but lists no models", "none needed"
                    )
    except httpx.HTTPError as err:
        return failed(
            name,
            scrub(f"{url} unreachable: {type(err).__name__}: {err}"),
            f"start the server, or correct the URL ({_url_source(name)})",
        )
    if status in (401, 403):
        return failed(name, f"{url} refused the key (HTTP {status})", f"set a valid {key_env}")
    if status >= 400:
        return failed(name, f"{base}/v1/models answered HTTP {status}", "check the server's log")
    return passed(name, f"{url} reachable, model {settings.model or 'default'}")


def _url_source(name: str) -> str:
    if name == "model endpoint":
        return "DISTILL_MODEL_URL or [local] url in models/models.toml"
    return "DISTILL_ESCALATION_URL or [escalation] url in models/models.toml"
