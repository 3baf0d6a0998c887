"""Messaging subscription tools: set and read subscription states of emails, phones and push tokens."""

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from store.catalog import subscriptions as subscription_store
from store.db.store import Store
from tools.models import Input, Output, SpaceId
from tools.registry import read, write
from tools.shapes import iso


SubscriptionType = Literal["ANDROID_PUSH", "EMAIL", "IOS_PUSH", "SMS", "WHATSAPP"]
SubscriptionStatus = Literal["DID_NOT_SUBSCRIBE", "SUBSCRIBED", "UNSUBSCRIBED"]


class GroupSubscriptionInput(Input):
    name: str
    status: SubscriptionStatus


class SubscriptionInput(Input):
    key: str = Field(description="Email, E.164 phone (+14155550100) or push token.")
    type: SubscriptionType
    status: Optional[SubscriptionStatus] = None
    groups: Optional[list[GroupSubscriptionInput]] = Field(None, description="EMAIL only.")


class SubscriptionQuery(Input):
    key: str
    type: SubscriptionType


class SubscriptionError(Output):
    code: str
    message: str


class GroupStatus(Output):
    id: str
    name: str
    status: SubscriptionStatus
    updatedAt: Optional[str] = None


class SubscriptionResult(Output):
    key: str
    type: str
    status: Optional[SubscriptionStatus] = None
    updatedAt: Optional[str] = None
    groups: Optional[list[GroupStatus]] = None
    errors: Optional[list[SubscriptionError]] = None


class SubscriptionFailure(Output):
    """A key the batch query could not look up (GetMessagingSubscriptionFailureResponse)."""

    key: str
    type: str
    errors: list[SubscriptionError]


class ReplaceSubscriptionsOutput(BaseModel):
    successes: list[SubscriptionResult]
    failures: list[SubscriptionResult]


class QuerySubscriptionsOutput(BaseModel):
    successes: list[SubscriptionResult]
    failures: list[SubscriptionFailure]
    errors: list[SubscriptionError]


def replace_messaging_subscriptions_in_spaces(
    store: Store,
    spaceId: SpaceId,
    subscriptions: Annotated[
        list[SubscriptionInput],
        Field(min_length=1, max_length=1000),
    ],
) -> ReplaceSubscriptionsOutput:
    """Set subscription states (SUBSCRIBED, UNSUBSCRIBED, DID_NOT_SUBSCRIBE) of EMAIL, SMS, WHATSAPP
    (E.164, +14155550100), IOS_PUSH or ANDROID_PUSH keys; EMAIL keys also groups (only while globally
    subscribed). Each key succeeds or fails alone; failures carry codes such as INVALID_EMAIL."""
    outcomes = subscription_store.replace_subscriptions(store, spaceId, [s.model_dump(exclude_none=True) for s in subscriptions])
    return ReplaceSubscriptionsOutput(
        successes=[_result(o) for o in outcomes if not o.errors], failures=[_result(o) for o in outcomes if o.errors]
    )


def batch_query_messaging_subscriptions_for_space(
    store: Store,
    spaceId: SpaceId,
    subscriptions: Annotated[
        list[SubscriptionQuery], Field(min_length=1, max_length=1000)
    ],
) -> QuerySubscriptionsOutput:
    """Read subscription states of keys: status and groups per key; status is absent for a key never
    seen. Malformed keys come back in failures with a code such as INVALID_EMAIL."""
    outcomes = subscription_store.query_subscriptions(store, spaceId, [s.model_dump() for s in subscriptions])
    return QuerySubscriptionsOutput(
        successes=[_result(o) for o in outcomes if not o.errors],
        failures=[SubscriptionFailure(key=o.key, type=o.type, errors=o.errors) for o in outcomes if o.errors],
        errors=[],
    )


def _result(outcome: subscription_store.Outcome) -> SubscriptionResult:
    return SubscriptionResult(
        key=outcome.key,
        type=outcome.type,
        status=outcome.status,
        updatedAt=iso(outcome.updated_at),
        groups=[{**group, "updatedAt": iso(group["updatedAt"])} for group in outcome.groups] or None,
        errors=outcome.errors or None,
    )


TOOLS = [
    write("replace_messaging_subscriptions_in_spaces", "Replace messaging subscriptions", replace_messaging_subscriptions_in_spaces, idempotent=True),
    read("batch_query_messaging_subscriptions_for_space", "Query messaging subscriptions", batch_query_messaging_subscriptions_for_space),
]
