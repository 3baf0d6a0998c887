"""The one injectable source of "now", so tests freeze time instead of sleeping, and the epoch
milliseconds every stored time is kept in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float rounding)."""
    return (moment - _EPOCH) // _MILLISECOND


def from_ms(millis: int) -> datetime:
    return _EPOCH + millis * _MILLISECOND


def iso(moment: datetime) -> str:
    """ISO-8601 UTC to the millisecond with `Z`, as the Public API and the Segment spec write times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_ms(millis: int) -> str:
    """A stored time as Segment writes it (as `iso`); one outside what a datetime holds (stored before
    event times were limited to 1900–2200) shows as the nearest representable time."""
    try:
        moment = from_ms(millis)
    except OverflowError:
        moment = datetime.min.replace(tzinfo=timezone.utc) if millis < 0 else datetime.max.replace(tzinfo=timezone.utc)
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at
