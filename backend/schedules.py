"""When a schedule runs next.

PERIODIC schedules are cron-style in UTC, as Segment's are: a run at every multiple of the interval
since midnight UTC (`1h` runs on the hour, `1d` at 00:00 UTC). SPECIFIC_DAYS schedules run at the
listed hours of the listed weekdays (0 = Sunday) in their own time zone. Across daylight-saving
changes a local time that does not exist (spring forward) runs at the first instant after the gap,
and a local time that occurs twice (fall back) runs once, at its first occurrence.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

PERIODIC_INTERVALS = {
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "8h": timedelta(hours=8),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
}


def is_timezone(name: str) -> bool:
    """True for an IANA time zone database id such as America/New_York."""
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def next_periodic(interval: str, after: datetime) -> datetime:
    """The first multiple of `interval` since midnight UTC strictly after `after`."""
    step = PERIODIC_INTERVALS[interval]
    after = after.astimezone(timezone.utc)
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = after - midnight
    return midnight + step * (elapsed // step + 1)


def next_specific_days(days: list[int], hours: list[int], tz_name: str, after: datetime) -> datetime:
    """The first listed (weekday, hour) in `tz_name` strictly after `after`, in UTC."""
    zone = ZoneInfo(tz_name)
    local_today = after.astimezone(zone).date()
    for offset in range(8):
        day = local_today + timedelta(days=offset)
        weekday = (day.weekday() + 1) % 7  # Python's Monday=0 → Segment's Sunday=0
        if weekday not in days:
            continue
        for hour in sorted(set(hours)):
            candidate = _local_instant(datetime(day.year, day.month, day.day, hour), zone)
            if candidate > after:
                return candidate
    raise AssertionError("a weekly schedule always has a run within eight days")


def _local_instant(naive: datetime, zone: ZoneInfo) -> datetime:
    # fold=0 maps a time in a spring-forward gap forward by the gap's length and picks the first of
    # two fall-back occurrences: exactly the documented behaviour.
    return naive.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
