"""distill mcp through the SDK's real client: over stdio (the CLI in its own process) and over
streamable HTTP (a real uvicorn server on 127.0.0.1). Retrieval is real (LanceDB, the hashing
embedder); the model is a scripted stand-in, except in the one slow test (the real GGUF)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load_config
from distill.home import Home
from distill.mcp_server.transport import build_http_server
from distill.replay import ChatModel
from distill.replay.config import ensure_gguf
from distill.runs import RunOptions, run_all
from distill.serve import ServeSettings, ServeState

from .conftest import FIXTURES, RECORDED_AT, REPO, copy_home, read_jsonl
from .helpers.answers import reworded_answer
from .helpers.models import PacedModel
from .helpers.replay import log_lines
from .helpers.serve import TOKEN, serving
from .helpers.upstream import FakeUpstream

TASK = "make the payments webhook idempotent so a replayed Stripe event is charged once"
TOOLS = {"search_playbooks", "get_playbook", "replay", "record_outcome"}


@contextmanager
def http_server(state: ServeState) -> Iterator[str]:
    """``distill mcp --transport streamable-http`` for ``state`` in a thread, on a free port."""
    try:
        with serving(build_http_server(state, access_log=False)) as base:
            yield f"{base}/mcp"
    finally:
        state.close()


def reworder() -> PacedModel:
    """A passing, new answer (the top playbook reworded)."""
    return PacedModel(0.0, answer=reworded_answer, name="reworder")


def make_state(home: Home, model: ChatModel, token: str | None = None) -> ServeState:
    settings = ServeSettings(token=SecretStr(token) if token else None, min_relevance=0.0)
    return ServeState(home, settings, index_uri=str(home.index_dir), local=lambda: model)


@pytest.fixture
def mcp_home(pristine: Home, tmp_path: Path) -> Home:
    return copy_home(pristine, tmp_path)


def stdio_params(home: Home, *extra: str) -> StdioServerParameters:
    command = ["-c", "from distill.cli import main; main()", "mcp", "--home", str(home.root)]
    return StdioServerParameters(command=sys.executable, args=[*command, *extra])


def test_stdio_lists_and_calls_every_tool_resource_and_prompt(mcp_home: Home) -> None:
    before = len(log_lines(mcp_home))

    async def session() -> dict[str, Any]:
        async with Client(stdio_params(mcp_home, "--min-relevance", "0")) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            search = await client.call_tool("search_playbooks", {"query": TASK, "top_k": 3})
            top = search.structured_content["hits"][0]["id"]
            playbook = await client.call_tool("get_playbook", {"id": top})
            dry = await client.call_tool("replay", {"task": TASK, "dry_run": True})
            bad = await client.call_tool("search_playbooks", {"query": TASK, "top_k": 0})
            missing = await client.call_tool("get_playbook", {"id": "audits:nope"})
            no_answer = await client.call_tool(
                "record_outcome", {"run_id": dry.structured_content["run_id"], "verdict": "accept"}
            )
            page = await client.list_resources()
            nxt = await client.list_resources(cursor=page.next_cursor)
            read = await client.read_resource(f"playbook://{top}")
            prompt = await client.get_prompt("ground_task", {"task": TASK})
            return locals()

    got = asyncio.run(session())
    assert set(got["tools"]) == TOOLS
    assert all(t.output_schema and t.description for t in got["tools"].values())
    hits = got["search"].structured_content["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["relevance"] is not None
    assert {"id", "score", "category", "source", "task_id", "title", "text", "provenance"} <= set(
        hits[0]
    )
    whole = got["playbook"].structured_content
    assert whole["id"] == got["top"] and whole["validation_steps"]
    assert whole["provenance"]["source_file"] and whole["provenance"]["line"] >= 1
    dry = got["dry"].structured_content
    assert dry["verdict"] == "dry_run" and dry["bundle"]["prompt"] and dry["answer"] == ""
    assert got["bad"].is_error and "top_k" in got["bad"].content[0].text
    assert got["missing"].is_error and "hint: use an id" in got["missing"].content[0].text
    assert got["no_answer"].is_error and "dry_run" in got["no_answer"].content[0].text
    assert len(got["page"].resources) == 100 and got["page"].next_cursor == "100"
    assert got["nxt"].resources[0].uri != got["page"].resources[0].uri
    assert got["top"] in got["read"].contents[0].text
    assert TASK in got["prompt"].messages[0].content.text
    assert len(log_lines(mcp_home)) == before  # a dry run writes nothing, as on the CLI


def test_record_outcome_turns_the_next_run_alls_replay_row_into_accepted(
    mcp_home: Home,
) -> None:
    state = make_state(mcp_home, reworder())
    before = len(log_lines(mcp_home))
    with http_server(state) as url:

        async def session() -> tuple[Any, Any]:
            async with Client(url) as client:
                run = await client.call_tool("replay", {"task": TASK, "task_id": "LL-MCP-1"})
                outcome = await client.call_tool(
                    "record_outcome",
                    {"run_id": run.structured_content["run_id"], "verdict": "accept"},
                )
                return run.structured_content, outcome.structured_content

        run, outcome = asyncio.run(session())
    assert run["verdict"] == "passed" and run["cited_ids"] and run["gate"]["passed"]
    assert run["bundle"] is None and len(log_lines(mcp_home)) == before + 1
    assert outcome["task_id"] == "LL-MCP-1" and outcome["verdict"] == "accept"
    reviews = read_jsonl(mcp_home.kb_dir / "observer_reviews.jsonl")
    assert reviews[-1]["observation_id"] == outcome["observation_id"]
    options = RunOptions(
        recorded_at=RECORDED_AT, repo_root=FIXTURES / "sample" / "repo", embedder="hash-384"
    )
    run_all(mcp_home, load_config(mcp_home.config_path), options)
    scored = {r["id"]: r for r in read_jsonl(mcp_home.scored_dir / "replay_runs.jsonl")}
    assert scored[f"replay_runs:{run['run_id']}"]["category"] == "accepted"


def test_eight_searches_while_one_replays_and_one_log_line_per_replay(mcp_home: Home) -> None:
    release = threading.Event()
    model = PacedModel(answer=reworded_answer, name="reworder", release=release)
    state = make_state(mcp_home, model)
    before = len(log_lines(mcp_home))
    with http_server(state) as url:

        async def one_client(call: str, arguments: dict[str, Any]) -> Any:
            async with Client(url) as client:
                return await client.call_tool(call, arguments)

        async def together() -> list[Any]:
            replay = asyncio.create_task(one_client("replay", {"task": TASK}))
            assert await asyncio.to_thread(model.started.wait, 60)  # the model is busy
            searches = [one_client("search_playbooks", {"query": f"{TASK} {n}"}) for n in range(8)]
            done = await asyncio.gather(*searches)
            assert not replay.done()  # every search answered while the model was busy
            release.set()
            return [*done, await replay]

        results = asyncio.run(together())
    assert not any(r.is_error for r in results)
    assert results[-1].structured_content["verdict"] == "passed"
    assert len(log_lines(mcp_home)) == before + 1


def test_http_needs_the_token_and_a_loopback_host(mcp_home: Home) -> None:
    with http_server(make_state(mcp_home, reworder(), token=TOKEN)) as url:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        refused = httpx.post(url, json=body)
        foreign = httpx.post(url, json=body, headers={"Host": "evil.example"})
        huge = httpx.post(url, content=b"{" + b" " * (2 << 20) + b"}", headers=_json(TOKEN))

        async def listed() -> set[str]:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                return {t.name for t in (await client.list_tools()).tools}

        assert asyncio.run(listed()) == TOOLS
    assert refused.status_code == 401 and TOKEN not in refused.text
    assert foreign.status_code == 400 and huge.status_code == 413


def _json(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_without_the_sdk_the_command_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a)
    )
    result = CliRunner().invoke(app, ["mcp"])
    assert result.exit_code == 1 and "pip install 'distill[mcp]'" in result.stderr


@pytest.mark.slow
def test_the_real_gguf_replays_through_mcp(mcp_home: Home) -> None:
    from distill.replay import LlamaCppModel

    model = LlamaCppModel(ensure_gguf(REPO / "models" / "gemma-3-270m-q4_k_m.gguf"), n_ctx=2048)
    with http_server(make_state(mcp_home, model)) as url:

        async def session() -> Any:
            async with Client(url) as client:
                return await client.call_tool("replay", {"task": TASK, "max_tokens": 64})

        result = asyncio.run(session())
    run = result.structured_content
    assert not result.is_error and run["verdict"] in ("passed", "failed") and run["answer"]
    assert run["gate"] is not None


def _rpc(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


def _answer(proc: subprocess.Popen[bytes], request_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        message = json.loads(line)
        if message.get("id") == request_id:
            return dict(message)
    raise AssertionError(f"no answer to request {request_id}")


def test_sigterm_on_stdio_lets_the_replay_in_flight_finish_then_exits(mcp_home: Home) -> None:
    """The model answers after 2 s; SIGTERM arrives meanwhile: the call still gets its answer
    (and its log line), then the server exits on its own."""
    before = len(log_lines(mcp_home))
    with FakeUpstream(2.0, answer="Store each event id; verify a replay is ignored.") as slow:
        params = stdio_params(mcp_home, "--min-relevance", "0", "--model-url", slow.url)
        proc = subprocess.Popen(
            [params.command, *params.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            _rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "drain-test", "version": "1"}}})  # fmt: skip
            assert "result" in _answer(proc, 1)
            _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "replay", "arguments": {"task": TASK}}})  # fmt: skip
            deadline = time.monotonic() + 60
            while not slow.requests:  # the model call is in flight
                assert time.monotonic() < deadline, "the replay never reached the model"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            answer = _answer(proc, 2)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not answer["result"].get("isError"), answer
    assert answer["result"]["structuredContent"]["run_id"]
    assert len(log_lines(mcp_home)) == before + 1  # the drained call was logged, whole
