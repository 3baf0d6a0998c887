"""Alert tools (additions to the Public API): a size change or a destination's failure rate watched in
the background and sent to a webhook when it starts (`store.insights.alerts`)."""

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, Field

from backend.clock import iso, iso_ms
from store.db.models import Alert as AlertRow, AlertFiring
from store.db.store import Store
from store.insights import alerts
from tools.models import Output, SpaceId, Status, resource_id
from tools.registry import read, remove, write


class Firing(Output):
    firedAt: str
    valuePercent: float
    payload: dict[str, Any]
    status: Optional[int] = Field(None, description="What the webhook answered.")
    error: Optional[str] = None


class Alert(Output):
    id: str
    type: str
    subjectId: str
    thresholdPercent: float
    webhookUrl: str
    firing: bool = Field(description="The condition held at the last check (sent once per episode).")
    checkedAt: Optional[str] = None
    createdAt: str
    firings: Optional[list[Firing]] = Field(None, description="The newest 20, newest first (list only).")


class AlertOutput(BaseModel):
    alert: Alert


class AlertsOutput(BaseModel):
    alerts: list[Alert]


def create_alert(
    store: Store,
    spaceId: SpaceId,
    type: Annotated[Literal["SIZE_CHANGE", "DELIVERY_FAILURE_RATE"], Field(
        description="SIZE_CHANGE: size against 24 h before; DELIVERY_FAILURE_RATE: attempts not delivered in the last hour.")],
    subjectId: Annotated[str, resource_id("An audience or computed trait id (SIZE_CHANGE), a destination id (dst_…).")],
    thresholdPercent: Annotated[float, Field(ge=0, le=1_000_000)],
    webhookUrl: Annotated[str, Field(min_length=1, max_length=2048)],
) -> AlertOutput:
    """(Not in the Public API.) Watch a size change (up or down, in % of the size 24 h before) or a
    destination's delivery failure rate; when it starts to exceed thresholdPercent, one POST
    {type: alert.fired, alertId, kind, subjectId, valuePercent, measured, firedAt, …} goes to webhookUrl."""
    return AlertOutput(alert=_shape(alerts.create_alert(store, spaceId, type, subjectId, thresholdPercent, webhookUrl)))


def list_alerts(store: Store, spaceId: SpaceId) -> AlertsOutput:
    """(Not in the Public API.) A space's alerts, each with its state and newest firings."""
    return AlertsOutput(alerts=[_shape(alert, firings) for alert, firings in alerts.list_alerts(store, spaceId)])


def remove_alert(store: Store, spaceId: SpaceId, id: Annotated[str, resource_id("Alert id (alr_…).")]) -> Status:
    """(Not in the Public API.) Remove an alert. Returns {status: SUCCESS}."""
    alerts.remove_alert(store, spaceId, id)
    return Status(status="SUCCESS")


def _shape(alert: AlertRow, firings: list[AlertFiring] | None = None) -> Alert:
    return Alert(id=alert.id, type=alert.kind, subjectId=alert.subject_id, thresholdPercent=alert.threshold_percent,
                 webhookUrl=alert.webhook_url, firing=alert.firing, createdAt=iso(alert.created_at),
                 checkedAt=None if alert.checked_at_ms is None else iso_ms(alert.checked_at_ms),
                 firings=None if firings is None else [
                     Firing(firedAt=iso_ms(f.fired_at_ms), valuePercent=f.value_percent, payload=f.payload,
                            status=f.status, error=f.error) for f in firings])


TOOLS = [
    write("create_alert", "Create alert", create_alert),
    read("list_alerts", "List alerts", list_alerts),
    remove("remove_alert", "Remove alert", remove_alert),
]
