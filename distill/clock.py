"""The wall clock as distill writes it: UTC, ISO-8601, ``Z``.

The one place that reads the time for a record. Stage outputs never do (they carry the pinned
``recorded_at``); receipts, logs, locks and reports do, through these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime

SECONDS = "%Y-%m-%dT%H:%M:%SZ"
MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"
COMPACT = "%Y%m%dT%H%M%S%fZ"


def utc_now(*, micro: bool = False) -> str:
    """Now, e.g. ``2026-01-01T00:00:00Z``; with ``micro``, ``2026-01-01T00:00:00.123456Z``
    (for times that must order the events of one second)."""
    return datetime.now(UTC).strftime(MICROSECONDS if micro else SECONDS)


def utc_stamp() -> str:
    """Now, compact for a name that sorts by time: ``20260101T000000123456Z``."""
    return datetime.now(UTC).strftime(COMPACT)
