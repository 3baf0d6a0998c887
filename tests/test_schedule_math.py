from datetime import datetime, timezone

import pytest

from backend.schedules import is_timezone, next_periodic, next_specific_days

UTC = timezone.utc


@pytest.mark.parametrize(
    "interval,after,expected",
    [
        ("15m", datetime(2026, 1, 1, 10, 14, 59, tzinfo=UTC), datetime(2026, 1, 1, 10, 15, tzinfo=UTC)),
        ("15m", datetime(2026, 1, 1, 10, 15, tzinfo=UTC), datetime(2026, 1, 1, 10, 30, tzinfo=UTC)),
        ("8h", datetime(2026, 1, 1, 17, 0, tzinfo=UTC), datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),
        ("1d", datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),
    ],
)
def test_periodic_runs_on_multiples_of_the_interval_since_utc_midnight(interval, after, expected):
    assert next_periodic(interval, after) == expected


def test_specific_days_use_the_local_time_zone():
    # Sunday 2026-11-22 09:30 UTC is 04:30 in New York; Monday 09:00 EST is 14:00 UTC.
    assert next_specific_days([1], [9], "America/New_York", datetime(2026, 11, 22, 9, 30, tzinfo=UTC)) == datetime(
        2026, 11, 23, 14, 0, tzinfo=UTC)


def test_a_time_skipped_by_spring_forward_runs_just_after_the_gap():
    after = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST on the day clocks jump from 02:00 to 03:00
    assert next_specific_days([0], [2], "America/New_York", after) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_a_time_repeated_by_fall_back_runs_once_at_its_first_occurrence():
    after = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT; 01:00 happens twice that night
    first = next_specific_days([0], [1], "America/New_York", after)
    assert first == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert next_specific_days([0], [1], "America/New_York", first) == datetime(2026, 11, 8, 6, 0, tzinfo=UTC)


def test_time_zones_are_iana_ids():
    assert is_timezone("Europe/Berlin") and not is_timezone("Mars/Olympus") and not is_timezone("")
