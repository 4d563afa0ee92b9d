"""Where the repository and its fixtures are, and the timestamp tests record runs at."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "fixtures"
RECORDED_AT = "2026-01-01T00:00:00Z"
