"""A row's time → UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``: ISO-8601 strings, and epoch numbers."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

EPOCH_MS_FROM = 1e11
"""Epoch numbers at or above this (in absolute value) are milliseconds, below it seconds:
1e11 seconds is the year 5138, 1e11 milliseconds is 1973-03-03, so no time a log holds is
ambiguous."""

_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")


def normalise_time(value: Any) -> str | None:
    """ISO-8601 → UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; naive times are taken as UTC.

    RFC 3339's lower-case ``t`` and ``z`` are accepted: ``2026-01-01t00:00:00z``.
    """
    if not isinstance(value, str):
        return None
    if _CANONICAL_TIME.fullmatch(value):  # already canonical (most rows): validate, keep as is
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 falls off the calendar in UTC
        return None
    return _canonical(moment)


def epoch_time(value: Any) -> str | None:
    """Epoch seconds, or milliseconds from :data:`EPOCH_MS_FROM` on, → canonical UTC text.

    ``1763509869`` → ``2025-11-18T23:51:09Z``; ``1763509869123`` → ``…09.123000Z``. Booleans,
    strings, NaN and times off the calendar are None.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    seconds = value / 1000 if abs(value) >= EPOCH_MS_FROM else value
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return _canonical(moment)


def record_time(value: Any, *, epoch: bool) -> str | None:
    """A row's time field: ISO-8601 text, or (with ``epoch``) an epoch number."""
    if epoch and not isinstance(value, str):
        return epoch_time(value)
    return normalise_time(value)


def _canonical(moment: datetime) -> str:
    """``moment`` (in UTC) as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if moment.year >= 1000:  # isoformat writes what strftime does, several times faster
        return moment.isoformat()[:-6] + "Z"  # less its "+00:00"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")  # before 1000: the year unpadded, as always
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
