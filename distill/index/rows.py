"""The playbook rows: the RAG export read and validated, and a row of the ``playbooks`` table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from distill.errors import DistillError, InputMissingError
from distill.jsonio import file_sha256, iter_json_objects, refuse_bad_lines
from distill.limits import LineLimits
from distill.schemas import RagSample

if TYPE_CHECKING:  # lancedb ships its types; imported lazily at run time (a heavy import)
    from lancedb.pydantic import LanceModel

DEFAULT_EXPORT_LINE = LineLimits().export  # with the default max_line_bytes


def read_playbooks(path: Path, max_line_bytes: int = DEFAULT_EXPORT_LINE) -> list[RagSample]:
    """The RAG export's rows; ``max_line_bytes`` is the home's export line limit (LineLimits)."""
    if not path.is_file():
        raise InputMissingError(f"no RAG export at {path}", hint="run `distill export rag` first")
    hint = "rerun `distill export rag`"  # the export never writes a bad line: a changed file
    samples = []
    for raw, row in iter_json_objects(path, max_line_bytes, on_bad=refuse_bad_lines(path, hint)):
        try:
            samples.append(RagSample.model_validate(row))
        except ValidationError as err:
            raise DistillError(
                f"{path}:{raw.line_no} is not a valid rag_sample.v1", hint=hint
            ) from err
    return samples


def playbook_row(sample: RagSample, vector: Sequence[float]) -> dict[str, Any]:
    return {
        "id": sample.id,
        "text": sample.text,
        "title": sample.title,
        "category": sample.category.value,
        "source": sample.source,
        "task_id": sample.task_id or "",
        "file_paths": sample.file_paths,
        "validation_steps": sample.validation_steps,
        "sig_hash": sample.provenance.sig_hash,
        "vector": list(vector),
    }


def row_model(dim: int) -> type[LanceModel]:
    from lancedb.pydantic import LanceModel, Vector

    class PlaybookRow(LanceModel):
        id: str
        text: str
        title: str
        category: str
        source: str
        task_id: str
        file_paths: list[str]
        validation_steps: list[str]
        sig_hash: str
        vector: Vector(dim)  # type: ignore[valid-type]

    return PlaybookRow


def source_digest(path: Path) -> str:
    return file_sha256(path)
