"""The Space Schema tools through MCP: an agent lists the events, properties, traits and values a space
has received before it writes a definition, in Segment's shapes, a page at a time."""

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from store.catalog import audiences
from store.compute import runs
from store.db.models import Event, SchemaEvent, SchemaField, SchemaMeta, SchemaSample
from store.ingest import schema_summary
from tests.conftest import NOW
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio


@pytest.fixture
def shop(store, space_id):
    """Orders on two plans (gold twice as often), a page view, identified users (one of them merged
    from an anonymous visitor), an account, and an audience whose key a call tried to set."""
    at = lambda minutes: (NOW - timedelta(minutes=minutes)).isoformat()  # noqa: E731
    orders = [{"type": "track", "userId": f"u{i}", "event": "Order Completed", "timestamp": at(50 - i),
               "properties": {"revenue": 10 * i, "plan": "gold" if i % 3 else "silver", "items": ["a"],
                              "shipping": {"city": "Oslo"}},
               "context": {"page": {"url": "https://shop.example/checkout"}}} for i in range(6)]
    send(store, space_id, *orders,
         {"type": "page", "anonymousId": "anon-1", "name": "Home", "timestamp": at(40)},
         {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "traits": {"email": "u1@example.com",
                                                                                 "tier": "pro"}, "timestamp": at(30)},
         {"type": "identify", "userId": "u2", "traits": {"tier": "pro"}, "timestamp": at(20)},
         {"type": "group", "userId": "u2", "groupId": "acme", "traits": {"industry": "retail"}, "timestamp": at(10)})
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS", options=None,
                                       query="event('Order Completed').count() >= 1")
    runs.run(store, buyers.id, reason="initial")
    send(store, space_id, {"type": "identify", "userId": "mallory", "traits": {buyers.key: "yes"}})
    return buyers


async def test_events_are_listed_with_their_call_type_count_and_last_seen(call, space_id, shop):
    listed = await call.ok("list_events", spaceId=space_id, sortBy="name", sortDir="asc")

    assert [(e["name"], e["type"], e["count"]) for e in listed["events"]] == [
        ("Group", "GROUP", 1), ("Identify", "IDENTIFY", 3), ("Order Completed", "TRACK", 6), ("Page Viewed", "PAGE", 1)]
    assert all(e["lastSeenAt"].endswith("Z") for e in listed["events"])
    assert listed["pagination"]["totalEntries"] == 4
    searched = await call.ok("list_events", spaceId=space_id, search="order")
    assert [e["name"] for e in searched["events"]] == ["Order Completed"]


async def test_events_come_a_page_at_a_time(call, space_id, shop):
    first = await call.ok("list_events", spaceId=space_id, sortBy="name", sortDir="desc", pagination={"count": 3})
    rest = await call.ok("list_events", spaceId=space_id, sortBy="name", sortDir="desc",
                         pagination={"count": 3, "cursor": first["pagination"]["next"]})

    assert [e["name"] for e in first["events"] + rest["events"]] == ["Page Viewed", "Order Completed", "Identify", "Group"]
    assert "next" not in rest["pagination"] and "previous" in rest["pagination"]


async def test_an_events_properties_and_context_fields_have_dotted_names_types_and_samples(call, space_id, shop):
    listed = await call.ok("list_properties_from_event", spaceId=space_id, eventName="Order Completed", sortBy="name",
                           sortDir="asc", includeSampleValues=True, samplesCount=1)

    fields = {(p["type"], p["name"]): (p["dataType"], p["count"], p["samples"]) for p in listed["eventProperties"]}
    assert fields == {
        ("CONTEXT", "page.url"): ("STRING", 6, ["https://shop.example/checkout"]),
        ("PROPERTY", "items"): ("ARRAY", 6, []),
        ("PROPERTY", "plan"): ("STRING", 6, ["gold"]),
        ("PROPERTY", "revenue"): ("NUMBER", 6, ["0"]),
        ("PROPERTY", "shipping.city"): ("STRING", 6, ["Oslo"]),
    }
    assert all(p["eventName"] == "Order Completed" for p in listed["eventProperties"])
    plans = await call.ok("list_sample_values_from_event_property", spaceId=space_id, eventName="Order Completed",
                          propertyName="plan", propertyType="PROPERTY")
    assert plans == {"sampleValues": ["gold", "silver"]}


async def test_values_are_sampled_in_their_json_spelling_big_integers_exactly(call, store, space_id):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Measured",
                           "properties": {"n": 2**70, "ok": True, "ratio": 0.5}})
    samples = {name: (await call.ok("list_sample_values_from_event_property", spaceId=space_id, eventName="Measured",
                                    propertyName=name, propertyType="PROPERTY"))["sampleValues"]
               for name in ("n", "ok", "ratio")}
    assert samples == {"n": [str(2**70)], "ok": ["true"], "ratio": ["0.5"]}


async def test_traits_are_typed_by_who_writes_them_and_a_forged_audience_key_is_not_custom(call, space_id, shop):
    listed = await call.ok("list_traits", spaceId=space_id, includeSampleValues=True)

    traits = {t["trait"]: (t["type"], t.get("samples")) for t in listed["traits"]}
    assert traits == {"email": ("CUSTOM", ["u1@example.com"]), "tier": ("CUSTOM", ["pro"]),
                      shop.key: ("AUDIENCE", ["true"])}
    assert "previous" not in listed["pagination"]
    accounts = await call.ok("list_traits", spaceId=space_id, collection="accounts")
    assert [(t["trait"], t["type"], t["count"]) for t in accounts["traits"]] == [("industry", "CUSTOM", 1)]
    tiers = await call.ok("list_sample_values_from_trait", spaceId=space_id, traitKey="tier")
    assert tiers == {"sampleValues": ["pro"]}


async def test_traits_page_forward_through_the_same_order(call, space_id, shop):
    whole = await call.ok("list_traits", spaceId=space_id, sortBy="lastSeenAt", sortDir="desc")
    first = await call.ok("list_traits", spaceId=space_id, sortBy="lastSeenAt", sortDir="desc", pagination={"count": 2})
    rest = await call.ok("list_traits", spaceId=space_id, sortBy="lastSeenAt", sortDir="desc",
                         pagination={"count": 2, "cursor": first["pagination"]["next"]})

    assert first["traits"] + rest["traits"] == whole["traits"] and len(whole["traits"]) == 3
    assert "next" not in rest["pagination"]


async def test_a_name_the_space_never_received_is_not_found_with_where_to_look(call, space_id, shop):
    event = await call.error("list_properties_from_event", spaceId=space_id, eventName="Order Complete")
    assert event["type"] == "not-found" and event["field"] == "eventName" and "list_events" in event["message"]
    prop = await call.error("list_sample_values_from_event_property", spaceId=space_id, eventName="Order Completed",
                            propertyName="plan", propertyType="CONTEXT")
    assert prop["type"] == "not-found" and prop["field"] == "propertyName"
    trait = await call.error("list_sample_values_from_trait", spaceId=space_id, traitKey="total_revenu")
    assert trait["type"] == "not-found" and "list_traits" in trait["message"]
    kind = await call.error("list_sample_values_from_event_property", spaceId=space_id, eventName="Order Completed",
                            propertyName="plan")
    assert kind["type"] == "input-validation" and kind["field"] == "propertyType"


async def test_without_a_data_graph_there_are_no_entity_paths_and_no_entities(call, space_id, shop):
    paths = await call.ok("list_entity_paths", spaceId=space_id)
    assert paths["entityPaths"] == [] and paths["pagination"]["totalEntries"] == 0
    entity = await call.error("list_properties_from_entity", spaceId=space_id, entitySlug="orders")
    assert entity["type"] == "not-found" and entity["field"] == "entitySlug" and "Data Graph" in entity["message"]


def test_events_stored_before_the_summary_are_summarised_once_on_start(store, space_id, shop):
    def summary():
        with store.read() as session:
            return [session.execute(select(model).order_by(*model.__table__.primary_key.columns)).all()
                    for model in (SchemaEvent, SchemaField)], session.scalar(select(func.sum(SchemaSample.count)))

    kept = summary()
    with store.write() as session:
        for model in (SchemaEvent, SchemaField, SchemaSample):
            session.execute(delete(model))
        newest = session.scalar(select(func.max(Event.id)))
        session.add(SchemaMeta(key=schema_summary.PENDING_KEY, value=f"0:{newest}"))

    schema_summary.catch_up(store)
    schema_summary.catch_up(store)

    assert _names(summary()) == _names(kept)
    assert summary()[1] == kept[1]
    with store.read() as session:
        assert session.get(SchemaMeta, schema_summary.PENDING_KEY) is None


def _names(summary):
    (events, fields), _ = summary
    return ([(row.type, row.name, row.count) for (row,) in events],
            sorted((row.kind, row.event, row.name, row.count, row.distinct_values) for (row,) in fields))


def test_a_batch_is_tallied_by_event_and_field_with_types_counts_and_sampled_values():
    summary = schema_summary.Summary(computed_keys={"vip"})
    for at, price in ((1, 5), (3, "five"), (2, 5)):
        summary.add(schema_summary.Received("track", "Bought", {"price": price, "a.b": {"c": "x"}, "none": None},
                                            {}, None, at))
    summary.add(schema_summary.Received("identify", None, {}, {}, {"plan": "pro", "vip": True}, 4))
    assert (summary.events[("TRACK", "Bought")].count, summary.events[("TRACK", "Bought")].last_seen_ms) == (3, 3)
    price = summary.fields[("PROPERTY", "Bought", "price")]
    assert (price.count, price.data_type, dict(price.values)) == (3, "MIXED", {"5": 2, "five": 1})
    assert summary.fields[("PROPERTY", "Bought", "a\\.b.c")].values == {"x": 3}, "a literal dot is escaped"
    assert ("PROPERTY", "Bought", "none") not in summary.fields, "a null is no value"
    assert set(summary.fields) - {key for key in summary.fields if key[0] == "PROPERTY"} == {("users", "", "plan")}, \
        "a computed key set by a call is not a trait"


async def test_a_field_at_the_cap_counts_the_values_it_keeps_and_takes_no_new_ones(call, store, space_id, monkeypatch):
    monkeypatch.setattr(schema_summary, "SAMPLE_CAP", 2)
    monkeypatch.setattr(schema_summary, "READ_KEPT_FROM", 3)
    def coded(code: str) -> dict:
        return {"type": "track", "userId": "ann", "event": "Coded", "properties": {"code": code}}

    send(store, space_id, coded("a"), coded("b"))
    send(store, space_id, coded("a"), coded("c"), coded("a"), coded("b"))  # enough values to read the kept ones
    send(store, space_id, coded("d"), coded("b"))  # too few: each is counted where it is stored

    counts = await call.ok("list_properties_from_event", spaceId=space_id, eventName="Coded",
                           includeSampleValues=True)
    assert [(p["name"], p["count"]) for p in counts["eventProperties"]] == [("code", 8)]
    with store.read() as session:
        kept = dict(session.execute(select(SchemaSample.value, SchemaSample.count)).all())
    assert kept == {"a": 3, "b": 3}
