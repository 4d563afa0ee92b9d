"""Source streams: one adapter per stream, built-in or declared in distill.toml, read through a
log format (JSONL, Claude Code sessions, trajectories, chat-completion logs)."""

from distill.sources.builtin import BUILTIN_SOURCES, FACTS_STREAM, OBSERVER_STREAM
from distill.sources.formats import FORMATS, Format
from distill.sources.parse import MAX_ROW_DEPTH, parse_row
from distill.sources.paths import get_path
from distill.sources.rows import RowOutcome, evidence_from_line, evidence_from_unit, unprocessable
from distill.sources.spec import Scorable, ScoringContext, Source, SourceSpec, Verdict
from distill.sources.units import Unit

__all__ = [
    "BUILTIN_SOURCES",
    "FACTS_STREAM",
    "FORMATS",
    "Format",
    "MAX_ROW_DEPTH",
    "OBSERVER_STREAM",
    "RowOutcome",
    "Scorable",
    "ScoringContext",
    "Source",
    "SourceSpec",
    "Unit",
    "Verdict",
    "evidence_from_line",
    "evidence_from_unit",
    "get_path",
    "parse_row",
    "unprocessable",
]
