"""Canonical UTC text: the fast spelling of a moment equals strftime's, for every moment."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from distill.sources.times import epoch_time, normalise_time


def _strftime_canonical(moment: datetime) -> str:
    """How a moment was spelled before isoformat: strftime, then the microseconds if any."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


@given(st.datetimes(timezones=st.just(UTC)))
def test_a_utc_moment_is_spelled_as_strftime_spelled_it(moment: datetime) -> None:
    naive = moment.replace(tzinfo=None).isoformat()
    assert normalise_time(naive + "+00:00") == _strftime_canonical(moment)


@given(st.integers(min_value=-62_135_596_800, max_value=99_999_999_999))
def test_epoch_seconds_are_spelled_as_strftime_spelled_them(seconds: int) -> None:
    """Seconds from year 1 to just below 1e11 (from there on, epoch numbers are milliseconds)."""
    assert epoch_time(seconds) == _strftime_canonical(datetime.fromtimestamp(seconds, UTC))


def test_years_before_1000_keep_their_unpadded_spelling() -> None:
    assert normalise_time("0999-01-02T03:04:05.000007+00:00") == _strftime_canonical(
        datetime(999, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    )
