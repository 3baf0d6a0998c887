"""Alerts (`alr_…`): conditions checked in the background, each sent once to a webhook when it starts
to hold.

- SIZE_CHANGE of an audience or computed trait: its size now against its size 24 hours before, from
  the stays it keeps, as a percentage of the size then (from none, any size is a 100 % change);
  it holds when the change, up or down, is more than the threshold.
- DELIVERY_FAILURE_RATE of a destination instance: of the delivery attempts of its connections and
  activations in the last hour, the share that did not deliver (retried, throttled, failed or
  dead-lettered); it holds when that is more than the threshold.

An alert fires when its condition starts to hold: its webhook is sent one POST of the payload below
(JSON, not retried: what the webhook answered is kept with the firing) and it stays `firing`, sending
nothing more, until a check finds the condition gone. A check's webhooks are sent at once, each
within WEBHOOK_SECONDS in all (connecting, sending and the whole answer), so a webhook that answers
slowly holds the loop that checks for that long at most. Checks run every SEGMENT_AUDIENCES_ALERT_SECONDS
(default 60) in the compute loop, under a lock, so several workers fire an alert once.

Payload: {"type": "alert.fired", "alertId", "spaceId", "kind", "subjectId", "thresholdPercent",
"valuePercent", "firedAt", "measured": {"size", "sizeBefore"} or {"attempts", "failed"}, "since"}.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from sqlalchemy import case, func, or_, select as core_select
from sqlmodel import Session, col, select

from backend.clock import iso_ms, to_ms
from store.catalog.audiences import require_audience
from store.catalog.computed_traits import require_computed_trait
from store.catalog.destination_instances import require_destination
from store.catalog.spaces import require_space
from store.db import locks
from store.db.errors import InputValidation, NotFound
from store.db.ids import new_id
from store.db.models import Alert, AlertFiring, ComputedValue, DeliveryAttempt, Membership
from store.insights.delivery_history import targets_of
from store.db.store import Store

logger = logging.getLogger("segment_audiences.alerts")
KINDS = ("SIZE_CHANGE", "DELIVERY_FAILURE_RATE")
SIZE_WINDOW_MS = 24 * 3_600_000
FAILURE_WINDOW_MS = 3_600_000
RECENT_FIRINGS = 20
WEBHOOK_SECONDS = 10.0


@dataclass(frozen=True)
class Measure:
    percent: float
    measured: dict[str, int]
    since_ms: int


@dataclass(frozen=True)
class Fired:
    firing_id: int
    url: str
    payload: dict[str, Any]


def create_alert(store: Store, space_id: str, kind: str, subject_id: str, threshold_percent: float,
                 webhook_url: str) -> Alert:
    if kind not in KINDS:
        raise InputValidation(f"type must be one of {', '.join(KINDS)}, not '{kind}'.", field="type")
    if threshold_percent < 0:
        raise InputValidation("thresholdPercent is a percentage of 0 or more.", field="thresholdPercent")
    parts = urlsplit(webhook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputValidation("webhookUrl must be an http(s) URL, e.g. https://hooks.example.com/alerts.",
                              field="webhookUrl")
    with store.write() as session:
        _require_subject(session, space_id, kind, subject_id)
        alert = Alert(id=new_id("alr"), space_id=space_id, kind=kind, subject_id=subject_id,
                      threshold_percent=threshold_percent, webhook_url=webhook_url, created_at=store.now())
        session.add(alert)
        return alert


def list_alerts(store: Store, space_id: str) -> list[tuple[Alert, list[AlertFiring]]]:
    """The space's alerts, oldest first, each with its newest RECENT_FIRINGS firings (newest first)."""
    with store.read() as session:
        require_space(session, space_id)
        alerts = session.exec(select(Alert).where(Alert.space_id == space_id).order_by(Alert.created_at, Alert.id)).all()
        return [(alert, list(session.exec(select(AlertFiring).where(AlertFiring.alert_id == alert.id)
                                          .order_by(col(AlertFiring.id).desc()).limit(RECENT_FIRINGS))))
                for alert in alerts]


def remove_alert(store: Store, space_id: str, alert_id: str) -> None:
    with store.write() as session:
        require_space(session, space_id)
        alert = session.get(Alert, alert_id)
        if alert is None or alert.space_id != space_id:
            raise NotFound("alert", alert_id, field="id", scope=f"in space '{space_id}'")
        session.delete(alert)


def check_all(store: Store) -> list[Fired]:
    """Measure every alert now, fire those whose condition starts to hold, and send their webhooks;
    returns what was fired."""
    now_ms = to_ms(store.now())
    fired: list[Fired] = []
    with store.write() as session:
        if not locks.try_exclusive(session, "alerts"):
            return []
        for alert in session.exec(select(Alert)).all():
            measure = _measure(session, alert, now_ms)
            holds = measure.percent > alert.threshold_percent
            if holds and not alert.firing:
                payload = _payload(alert, measure, now_ms)
                firing = AlertFiring(alert_id=alert.id, space_id=alert.space_id, fired_at_ms=now_ms,
                                     value_percent=measure.percent, payload=payload)
                session.add(firing)
                session.flush()
                fired.append(Fired(firing.id, alert.webhook_url, payload))
            alert.firing, alert.checked_at_ms = holds, now_ms
            session.add(alert)
    if fired:
        _send_all(store, fired)
    return fired


def _measure(session: Session, alert: Alert, now_ms: int) -> Measure:
    if alert.kind == "SIZE_CHANGE":
        since = now_ms - SIZE_WINDOW_MS
        size, before = _size_at(session, alert.subject_id, now_ms), _size_at(session, alert.subject_id, since)
        percent = (0.0 if size == 0 else 100.0) if before == 0 else abs(size - before) / before * 100
        return Measure(round(percent, 2), {"size": size, "sizeBefore": before}, since)
    since = now_ms - FAILURE_WINDOW_MS
    targets = targets_of(session, alert.subject_id)
    attempts, failed = session.execute(core_select(
        func.count(), func.coalesce(func.sum(case((DeliveryAttempt.outcome != "delivered", 1), else_=0)), 0))
        .where(col(DeliveryAttempt.target_id).in_(targets), DeliveryAttempt.at_ms > since)).one()
    percent = failed / attempts * 100 if attempts else 0.0
    return Measure(round(percent, 2), {"attempts": attempts, "failed": int(failed)}, since)


def _size_at(session: Session, subject_id: str, at_ms: int) -> int:
    """How many stays (audience) or held values (computed trait) were open at `at_ms`."""
    if subject_id.startswith("tra_"):
        began, ended, mine = ComputedValue.from_ms, ComputedValue.until_ms, ComputedValue.computation_id == subject_id
    else:
        began, ended, mine = Membership.entered_at_ms, Membership.exited_at_ms, Membership.computation_id == subject_id
    return session.execute(core_select(func.count()).where(
        mine, began <= at_ms, or_(col(ended).is_(None), ended > at_ms))).scalar_one()


def _payload(alert: Alert, measure: Measure, now_ms: int) -> dict[str, Any]:
    return {"type": "alert.fired", "alertId": alert.id, "spaceId": alert.space_id, "kind": alert.kind,
            "subjectId": alert.subject_id, "thresholdPercent": alert.threshold_percent,
            "valuePercent": measure.percent, "firedAt": iso_ms(now_ms), "measured": measure.measured,
            "since": iso_ms(measure.since_ms)}


def _send_all(store: Store, fired: list[Fired]) -> None:
    """POST each firing's payload once, all at once, in an event loop of their own (the caller may be
    in one already); keep each status or error with its firing. The client sets no timeout of its
    own: `_post`'s deadline bounds each request whole."""
    answers: dict[int, tuple[int | None, str | None]] = {}

    async def post_all() -> None:
        async with httpx.AsyncClient(timeout=None) as client, anyio.create_task_group() as group:
            for firing in fired:
                group.start_soon(_post, client, firing, answers)

    sending = threading.Thread(target=anyio.run, args=(post_all,), name="segment-audiences-alert-webhooks")
    sending.start()
    sending.join()
    with store.write() as session:
        for firing in fired:
            row = session.get(AlertFiring, firing.firing_id)
            row.status, row.error = answers.get(firing.firing_id, (None, "not sent"))
            session.add(row)


async def _post(client: httpx.AsyncClient, fired: Fired, answers: dict) -> None:
    status, error = None, f"no whole answer within {WEBHOOK_SECONDS:g} s"
    with anyio.move_on_after(WEBHOOK_SECONDS):
        try:
            status, error = (await client.post(fired.url, json=fired.payload)).status_code, None
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
    if error:
        logger.warning("the webhook of alert firing %d failed: %s", fired.firing_id, error)
    answers[fired.firing_id] = (status, error)


def _require_subject(session: Session, space_id: str, kind: str, subject_id: str) -> None:
    if kind == "DELIVERY_FAILURE_RATE":
        require_destination(session, space_id, subject_id, field="subjectId")
    elif subject_id.startswith("tra_"):
        require_computed_trait(session, space_id, subject_id)
    else:
        require_audience(session, space_id, subject_id)
