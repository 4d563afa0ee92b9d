"""Source streams: one adapter per stream, built-in or declared in distill.toml."""

from distill.sources.builtin import BUILTIN_SOURCES, FACTS_STREAM, OBSERVER_STREAM
from distill.sources.parse import MAX_ROW_DEPTH, parse_row
from distill.sources.rows import RowOutcome, evidence_from_line, unprocessable
from distill.sources.spec import Scorable, ScoringContext, Source, SourceSpec, Verdict

__all__ = [
    "BUILTIN_SOURCES",
    "FACTS_STREAM",
    "MAX_ROW_DEPTH",
    "OBSERVER_STREAM",
    "RowOutcome",
    "Scorable",
    "ScoringContext",
    "Source",
    "SourceSpec",
    "Verdict",
    "evidence_from_line",
    "parse_row",
    "unprocessable",
]
