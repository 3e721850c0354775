"""Business hours per queue: is it open now, and when does it open next (in the queue's time zone)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from handoff.config import DAYS


def _span(hours: dict[str, list[str]], day: int) -> tuple[time, time] | None:
    span = hours.get(DAYS[day])
    if not span:
        return None
    opening, closing = span
    close = time(23, 59, 59) if closing == "24:00" else time.fromisoformat(closing)
    return time.fromisoformat(opening), close


def is_open(hours: dict[str, list[str]], tz: str, now: datetime) -> bool:
    """``hours == {}`` means always open."""
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(tz))
    span = _span(hours, local.weekday())
    return span is not None and span[0] <= local.time() < span[1]


def next_opening(hours: dict[str, list[str]], tz: str, now: datetime) -> datetime | None:
    """The next moment the queue opens (aware, in the queue's zone); None if open now or never."""
    if is_open(hours, tz, now):
        return None
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        span = _span(hours, day.weekday())
        if span is None:
            continue
        candidate = datetime.combine(day, span[0], tzinfo=zone)
        if candidate > local:
            return candidate
    return None
