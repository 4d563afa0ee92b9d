"""The wheel, installed into a fresh virtual environment outside the checkout, works.

The fresh venv sees the dev venv's site-packages through a plain ``.pth`` line (torch, lancedb
and the rest without a download). A plain path line does not run that folder's own ``.pth``
files, so the dev venv's editable finder never loads: ``distill`` comes from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import distill

from .conftest import REPO

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def _build_wheel(out: Path, env: dict[str, str]) -> Path:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = _run([*build, "--no-index", "-w", str(out), str(REPO)], REPO, env)
    assert result.returncode == 0, result.stderr
    wheel = next(out.glob("distill-*.whl"))
    # the PEP 561 marker: type checkers use distill's own annotations when it is a dependency
    assert "distill/py.typed" in zipfile.ZipFile(wheel).namelist()
    return wheel


def _fresh_venv(root: Path, wheel: Path, env: dict[str, str]) -> Path:
    base = Path(sys.base_prefix) / "bin" / "python3"
    result = _run([str(base), "-m", "venv", "--without-pip", str(root)], root.parent, env)
    assert result.returncode == 0, result.stderr
    python = root / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        root.parent,
        env,
    ).stdout.strip()
    (Path(site) / "dev_site_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    result = _run([*pip, "--no-deps", "--no-index", str(wheel)], root.parent, env)
    assert result.returncode == 0, result.stderr
    return root / "bin"


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    wheel = _build_wheel(tmp_path / "wheels", env)
    bin_dir = _fresh_venv(tmp_path / "venv", wheel, env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["DISTILL_HOME"] = str(elsewhere)

    where = _run(
        [str(bin_dir / "python"), "-c", "import distill; print(distill.__file__)"], elsewhere, env
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout
    assert not where.stdout.startswith(str(REPO / "distill"))

    version = _run([str(bin_dir / "distill"), "--version"], elsewhere, env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"distill {distill.__version__} (code ")

    helptext = _run([str(bin_dir / "distill"), "--help"], elsewhere, env)
    assert helptext.returncode == 0 and "acceptance" in helptext.stdout

    accepted = _run([str(bin_dir / "distill"), "acceptance", "--json"], elsewhere, env)
    assert accepted.returncode == 0, accepted.stdout[-2000:] + accepted.stderr[-2000:]
    assert '"passed": true' in accepted.stdout or '"passed":true' in accepted.stdout
