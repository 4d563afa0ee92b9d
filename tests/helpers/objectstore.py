"""An S3-compatible server for tests: moto's server mode on 127.0.0.1 (a free port), in a thread,
and the environment that points boto3 and LanceDB at it with credentials made up per run."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def credentials() -> dict[str, str]:
    """Credentials that exist nowhere but in this test run: a test greps outputs for them."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": "s3cret/" + secrets.token_hex(16),
        "AWS_SESSION_TOKEN": "sess+" + secrets.token_hex(24),
    }


def point_at(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set the standard AWS variables for ``endpoint`` (and nothing from ~/.aws); return them."""
    env = {
        **credentials(),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",  # LanceDB refuses a plain-http endpoint without it
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


def make_bucket(name: str) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)


def objects(uri: str) -> dict[str, bytes]:
    """Every object under ``s3://bucket/prefix``, by key."""
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client: Any = boto3.client("s3")
    found = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in found for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
