"""How long a line each file distill reads back may be: all derived from `max_line_bytes`.

``[collect] max_line_bytes`` in distill.toml bounds a source line. Every later file holds one
source row's text more than once, so its limit is a multiple of that one, never a constant:

- an evidence row holds the row's text, the file paths and validation steps taken from it, and
  the fields outside the stream's contract: ``4 × max_line_bytes + 64 KiB``;
- a scored run is its evidence row plus the category and the rule, which may quote the
  verdict: twice the evidence limit;
- a dataset row holds a scored run's text twice (RAG's ``text`` beside ``instruction`` and
  ``response``; a preference pair's two sides): twice the scored limit, plus 64 KiB.

Collect skips a row whose evidence would be longer than the evidence limit (``line_too_long``),
so every later stage can read what the one before it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import Config, load_config
from distill.home import Home
from distill.jsonio import DEFAULT_MAX_LINE_BYTES

_SLACK = 64 * 1024  # the fixed fields: ids, provenance, category, title


@dataclass(frozen=True, slots=True)
class LineLimits:
    """The line limits of one home, from its ``max_line_bytes``.

    >>> LineLimits(1024).export
    344064
    """

    source: int = DEFAULT_MAX_LINE_BYTES

    @property
    def evidence(self) -> int:
        return 4 * self.source + _SLACK

    @property
    def scored(self) -> int:
        return 2 * self.evidence

    @property
    def export(self) -> int:
        return 2 * self.scored + _SLACK

    @classmethod
    def of(cls, config: Config) -> LineLimits:
        return cls(config.collect.max_line_bytes)

    @classmethod
    def of_home(cls, home: Home) -> LineLimits:
        """The limits ``<home>/distill.toml`` sets (the defaults without one)."""
        return cls.of(load_config(home.config_path))

    def describe(self, kind: str) -> str:
        """``kind``'s limit and where it comes from, for messages."""
        return f"{getattr(self, kind)} bytes, the {kind} line limit ({self.source} max_line_bytes)"
