"""distill doctor: each check's pass and fail paths, against tmp homes and a real local server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.doctor import run_doctor
from distill.doctor.endpoints import check_escalation_endpoint, check_model_endpoint
from distill.doctor.runtime import check_gguf, check_python, llama_verdict, torch_verdict
from distill.doctor.state import check_disk, check_home, check_index, check_lock
from distill.home import Home
from distill.lock import writer_lock

from .helpers.upstream import FakeUpstream

KEY = "sk-doctor-0123456789"


def test_python_version() -> None:
    assert check_python((3, 11)).status == "pass"
    assert check_python((3, 10)).status == "fail"


@pytest.mark.parametrize(
    ("cuda", "gpu", "status"),
    [(None, False, "pass"), ("12.8", True, "pass"), ("12.8", False, "warn")],
)
def test_torch_build(cuda: str | None, gpu: bool, status: str) -> None:
    check = torch_verdict("2.13.0", cuda, gpu)
    assert check.status == status
    if status == "warn":
        assert "download.pytorch.org/whl/cpu" in (check.fix or "")


def test_llama_build_flags() -> None:
    good = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    assert llama_verdict(good, {"avx2"}).status == "pass"
    native = good + "AMX_INT8 = 1 | "
    assert llama_verdict(native, {"avx2", "amx_int8"}).status == "warn"
    scalar = "CPU : SSE3 = 1 | "
    check = llama_verdict(scalar, {"avx2"})
    assert check.status == "warn" and "GGML_NATIVE=OFF" in (check.fix or "")


def test_gguf_found_or_missing(tmp_path: Path) -> None:
    home = Home(tmp_path)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "models.toml").write_text(f'[local]\npath = "{model}"\n')
    check = check_gguf(home, {})
    assert check.status == "pass" and str(model) in check.detail and "sha256" in check.detail
    elsewhere = tmp_path / "elsewhere.gguf"
    model.rename(elsewhere)
    assert check_gguf(home, {}).status in ("warn", "fail")  # warn when the package can write it
    assert str(elsewhere) in check_gguf(home, {"DISTILL_GGUF": str(elsewhere)}).detail
    assert check_gguf(home, {"DISTILL_MODEL_URL": "http://127.0.0.1:9/v1"}).status == "pass"


def test_home_layout(tmp_path: Path) -> None:
    assert check_home(Home(tmp_path / "absent")).status == "fail"
    assert check_home(Home(tmp_path)).status == "warn"
    (tmp_path / "data" / "_kb").mkdir(parents=True)
    (tmp_path / "data" / "_kb" / "audits.jsonl").write_text("{}\n")
    assert check_home(Home(tmp_path)).status == "pass"
    if os.geteuid() != 0:  # root writes anywhere
        tmp_path.chmod(0o500)
        try:
            assert check_home(Home(tmp_path)).status == "fail"
        finally:
            tmp_path.chmod(0o700)


def test_index_missing_or_unreadable(tmp_path: Path) -> None:
    uri = str(Home(tmp_path).index_dir)
    assert check_index(uri, None).status == "warn"
    broken = tmp_path / "index" / "playbooks.manifest.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("{not json")
    assert check_index(uri, None).status == "fail"


def test_lock_free_and_held(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert check_lock(home).status == "pass"
    with writer_lock(home, "run-all"):
        check = check_lock(home)
        assert check.status == "warn" and "run-all" in check.detail
    assert check_lock(home).status == "pass"


def test_disk_thresholds(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert check_disk(home, free=100 * 2**30).status == "pass"
    assert check_disk(home, free=2**30).status == "warn"
    assert check_disk(home, free=2**20).status == "fail"


def test_endpoints_not_configured(tmp_path: Path) -> None:
    assert check_model_endpoint(Home(tmp_path), {}).status == "pass"
    assert check_escalation_endpoint(Home(tmp_path), {}).status == "pass"


def test_endpoint_unreachable_names_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_ESCALATION_API_KEY", KEY)  # scrub() redacts what is configured
    env = {
        "DISTILL_ESCALATION_URL": f"http://127.0.0.1:9/{KEY}/v1",
        "DISTILL_ESCALATION_API_KEY": KEY,
    }
    check = check_escalation_endpoint(Home(tmp_path), env)
    assert check.status == "fail"
    assert KEY not in json.dumps(check.to_dict())


@pytest.mark.parametrize(("step", "status"), [("answer", "pass"), (401, "fail"), (500, "fail")])
def test_endpoint_reachable_on_a_real_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str | int, status: str
) -> None:
    monkeypatch.setenv("DISTILL_API_KEY", KEY)  # scrub() redacts what is configured
    with FakeUpstream(default=step) as upstream:
        env = {"DISTILL_MODEL_URL": upstream.url, "DISTILL_API_KEY": KEY}
        check = check_model_endpoint(Home(tmp_path), env)
    assert check.status == status, check
    assert KEY not in json.dumps(check.to_dict())


def test_doctor_cli_json_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_EMBEDDER", "hash-384")
    monkeypatch.setenv("DISTILL_ESCALATION_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DISTILL_ESCALATION_API_KEY", KEY)
    result = CliRunner().invoke(app, ["doctor", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    assert KEY not in result.output
    payload = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in payload["checks"]}
    assert payload["ok"] is False and statuses["escalation endpoint"] == "fail"
    assert statuses["python"] == "pass" and statuses["embedder"] == "pass"
    monkeypatch.delenv("DISTILL_ESCALATION_URL")
    report = run_doctor(Home(tmp_path), os.environ)
    assert report.ok, [c for c in report.checks if c.status == "fail"]
