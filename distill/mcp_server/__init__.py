"""distill mcp: the playbooks, replay and the outcome loop as an MCP server (needs `mcp`)."""

from distill.mcp_server.models import (
    OutcomeResult,
    Playbook,
    PlaybookHit,
    ReplayResult,
    SearchResult,
)
from distill.mcp_server.playbooks import get_playbook, playbook_ids, record_outcome

__all__ = [
    "OutcomeResult",
    "Playbook",
    "PlaybookHit",
    "ReplayResult",
    "SearchResult",
    "get_playbook",
    "playbook_ids",
    "record_outcome",
]
