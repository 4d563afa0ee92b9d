"""Request bodies distill accepts: ``POST /v1/replay`` of ``distill serve``.

Here, beside the files' contracts, so that the server, the MCP server and the client
(``distill replay --server``) share the model without importing one another.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReplayRequest(BaseModel):
    """The body of ``POST /v1/replay``: the task and the per-run flags of ``distill replay``.

    The model, index, ``--repo-root`` and ``--min-relevance`` are the server's settings, never a
    request's.
    """

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1)
    task_id: str | None = Field(default=None, max_length=200)
    top_k: int = Field(default=8, ge=1, le=50)
    local_only: bool = False
    allow_escalation: bool = False
    no_retrieval: bool = False
    dry_run: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
