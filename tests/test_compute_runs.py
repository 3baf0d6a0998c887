"""Compute runs over ingested data: membership history, the `<key>` trait, run records, outbox rows,
failures that keep the previous membership, realtime passes, sweeps, cadences and schedules."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from store.catalog import (activations, audiences, computed_traits, data_graphs, destination_instances, destinations,
                           schedules)
from store.compute import recompute, runs
from store.delivery import outbox as outbox_rows
from backend.clock import FrozenClock
from store.db.store import Store
from store.warehouse.location import warehouse_of
from tests.conftest import NOW
from tests.databases import database_url
from tests.ingest_helpers import profile_of, rows, send, traits_of


def track(user, event, at, **properties):
    return {"type": "track", "userId": user, "event": event, "properties": properties,
            "timestamp": at.isoformat().replace("+00:00", "Z")}


def members(store, audience_id):
    found = rows(store, "select profile_id from membership where computation_id = :a and exited_at_ms is null",
                 a=audience_id)
    return {profile_id for (profile_id,) in found}


def users(store, *names):
    return {profile_of(store, "user_id", name) for name in names}


def create(store, space_id, query, name="Buyers", audience_type="USERS", **options):
    return audiences.create_audience(store, space_id, name=name, audience_type=audience_type, query=query,
                                     options=options or None)


def connect_webhook(store, space_id, audience_id, activation_type="Audience Membership Changed"):
    destination = destination_instances.add_destination(store, space_id, slug="webhooks-actions", name="Hook", settings={})
    view = destinations.connect(store, space_id, audience_id, destination.id, "destination", None, None)
    return activations.add_activation(
        store, space_id, audience_id, view.connection.id, activation_type=activation_type,
        activation_name="On change", perform_resync=False, personalization=None,
        destination_mapping={"actionId": "webhooks-send", "settings": {"url": "http://127.0.0.1:9/hook"}})


def connect_moengage(store, space_id, audience_id):
    destination = destination_instances.add_destination(store, space_id, slug="moengage", name="MoEngage",
                                               settings={"apiId": "APP", "apiKey": "KEY"})
    return destinations.connect(store, space_id, audience_id, destination.id, "destination", None, None).connection


@pytest.fixture
def shoppers(store, space_id):
    send(store, space_id,
         track("ann", "Shoes Bought", NOW - timedelta(days=2), price=120),
         track("bob", "Shoes Bought", NOW - timedelta(days=2), price=80),
         track("cat", "Shoes Bought", NOW - timedelta(days=9), price=300),
         {"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "free"}},
         {"type": "track", "anonymousId": "anon-1", "event": "Shoes Bought", "properties": {"price": 500},
          "timestamp": (NOW - timedelta(hours=1)).isoformat()})
    return space_id


QUERY = "event('Shoes Bought').where( property('price') >= 100 ).within(7 days).count() >= 1"


def test_an_initial_run_makes_the_audience_live_with_its_members(store, shoppers):
    audience = create(store, shoppers, QUERY)
    assert recompute.run_due(store) == 1
    assert members(store, audience.id) == users(store, "ann")
    row = audiences.get_audience(store, shoppers, audience.id)
    assert row.status == "Live"
    [run] = rows(store, "select reason, status, size, entered, exited from compute_run where computation_id = :a",
                 a=audience.id)
    assert run == ("initial", "COMPLETED", 1, 1, 0)
    assert traits_of(store, profile_of(store, "user_id", "ann"))["buyers"] is True


def test_anonymous_profiles_join_only_when_their_ids_are_allowed(store, shoppers):
    audience = create(store, shoppers, QUERY, filterByExternalIds=["user_id", "anonymous_id"])
    runs.run(store, audience.id, reason="forced")
    assert members(store, audience.id) == users(store, "ann") | {profile_of(store, "anonymous_id", "anon-1")}


def test_without_history_only_events_received_after_creation_count(store, shoppers):
    store.clock.set(NOW + timedelta(minutes=1))
    audience = create(store, shoppers, QUERY, includeHistoricalData=False)
    runs.run(store, audience.id, reason="forced")
    assert members(store, audience.id) == set()
    store.clock.set(NOW + timedelta(minutes=5))
    send(store, shoppers, track("bob", "Shoes Bought", NOW, price=150))
    runs.run(store, audience.id, reason="forced")
    assert members(store, audience.id) == users(store, "bob")


def test_backfill_days_limit_how_far_back_history_is_read(store, shoppers):
    store.clock.set(NOW + timedelta(minutes=1))
    audience = create(store, shoppers, "event('Shoes Bought').count() >= 1", backfillEventDataDays=3,
                      includeHistoricalData=True)
    runs.run(store, audience.id, reason="forced")
    assert members(store, audience.id) == users(store, "ann", "bob")


def test_a_rerun_writes_only_the_difference_and_keeps_the_history(store, shoppers):
    audience = create(store, shoppers, QUERY)
    runs.run(store, audience.id, reason="forced")
    store.clock.set(NOW + timedelta(days=6))
    send(store, shoppers, track("bob", "Shoes Bought", NOW + timedelta(days=6), price=100))
    run = runs.run(store, audience.id, reason="forced")
    assert (run.entered, run.exited, run.size) == (1, 1, 1)
    assert members(store, audience.id) == users(store, "bob")
    ann = profile_of(store, "user_id", "ann")
    stays = rows(store, "select entered_at_ms, exited_at_ms from membership where profile_id = :p", p=ann)
    assert len(stays) == 1 and stays[0][1] is not None
    assert traits_of(store, ann)["buyers"] is False


def test_outbox_rows_follow_the_activation_type_and_have_stable_ids(store, shoppers):
    audience = create(store, shoppers, QUERY)
    connect_moengage(store, shoppers, audience.id)
    entered_only = connect_webhook(store, shoppers, audience.id, activation_type="Audience Entered")
    first = runs.run(store, audience.id, reason="forced")
    outbox = rows(store, "select target_kind, target_id, transition, run_id, message_id from outbox order by id")
    ann = profile_of(store, "user_id", "ann")
    assert [(kind, transition) for kind, _, transition, _, _ in outbox] == [("connection", "entered"),
                                                                           ("activation", "entered")]
    assert outbox[1][1] == entered_only.id and outbox[1][3] == first.id
    assert outbox[1][4] == outbox_rows.message_id(entered_only.id, ann, "entered", first.id)
    assert rows(store, "select profile_id from outbox") == [(ann,), (ann,)]


def test_a_failed_run_keeps_the_previous_membership_and_says_why(store, shoppers, monkeypatch):
    audience = create(store, shoppers, QUERY)
    runs.run(store, audience.id, reason="forced")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(outbox_rows, "enqueue", broken)
    send(store, shoppers, track("bob", "Shoes Bought", NOW, price=150))
    failed = runs.run(store, audience.id, reason="forced")
    assert failed.status == "FAILED" and "disk on fire" in failed.error
    assert members(store, audience.id) == users(store, "ann")
    assert audiences.get_audience(store, shoppers, audience.id).status == "Failed"
    assert rows(store, "select count(*) from membership") == [(1,)]


def test_a_linked_run_outside_the_process_owning_the_duckdb_warehouse_fails_saying_so(space_id, tmp_path):
    store = Store(database_url(tmp_path), clock=FrozenClock(NOW), analytics=f"duckdb:{tmp_path / 'analytic.duckdb'}")
    (tmp_path / "orders.csv").write_text("ORDER_ID,EMAIL\no1,ann@example.com\n")
    warehouse_of(store).load("orders", tmp_path / "orders.csv")
    data_graphs.update_data_graph(store, space_id, config_json={"data_graph": {
        "entity": {"order": {"name": "Order", "table_ref": "orders", "primary_key": "ORDER_ID"}},
        "profile": {"relationship": {"orders": {"name": "Orders", "related_entity": "order",
                                                "external_id": {"type": "email", "join_key": "EMAIL"}}}}}})
    audience = create(store, space_id, "entity('orders').count() >= 1", audience_type="LINKED")

    run = runs.run(store, audience.id, reason="forced")

    assert run.status == "FAILED" and "analytic store, which another process owns" in run.error
    store.close()


def test_realtime_passes_follow_new_events_for_just_those_profiles(store, shoppers):
    audience = create(store, shoppers, QUERY)
    recompute.run_due(store)
    recompute.process_dirty(store)
    send(store, shoppers, track("bob", "Shoes Bought", NOW, price=150))
    assert recompute.process_dirty(store) == 1
    assert members(store, audience.id) == users(store, "ann", "bob")
    assert rows(store, "select size from compute_state where computation_id = :a", a=audience.id) == [(2,)]
    assert rows(store, "select count(*) from dirty_profile") == [(0,)]


def test_audiences_of_audiences_are_computed_after_the_audiences_they_read(store, shoppers):
    vip = create(store, shoppers, "trait('buyers') = true AND trait('plan').absent()", name="Buyer VIPs")
    buyers = create(store, shoppers, QUERY)
    recompute.run_due(store)
    assert members(store, vip.id) == users(store, "ann")
    send(store, shoppers, track("bob", "Shoes Bought", NOW, price=150))
    recompute.process_dirty(store)
    assert members(store, buyers.id) == users(store, "ann", "bob")
    assert members(store, vip.id) == users(store, "ann", "bob")


def test_window_sweeps_let_members_age_out_without_new_events(store, shoppers):
    audience = create(store, shoppers, QUERY)
    recompute.run_due(store)
    store.clock.set(NOW + timedelta(days=4, hours=23, minutes=50))
    assert recompute.run_due(store) == 1
    assert members(store, audience.id) == users(store, "ann")
    store.clock.set(NOW + timedelta(days=5, minutes=4))
    assert recompute.run_due(store) == 0
    store.clock.set(NOW + timedelta(days=5, minutes=5))
    assert recompute.run_due(store) == 1
    assert members(store, audience.id) == set()
    [reason] = rows(store, "select reason from compute_run where computation_id = :a order by started_at_ms desc "
                           "limit 1", a=audience.id)
    assert reason == ("sweep",)


def test_batch_audiences_run_on_their_cadence(store, shoppers):
    funnel = create(store, shoppers, "event('Shoes Bought').where(event('Shoes Returned').within(parent: 5 days)"
                                     ".count() = 0).count() >= 1", name="Kept")
    recompute.run_due(store, runs.Cadence(batch_ms=3_600_000))
    assert members(store, funnel.id) == users(store, "ann", "bob", "cat")
    send(store, shoppers, track("ann", "Shoes Returned", NOW, price=120))
    recompute.process_dirty(store)
    assert members(store, funnel.id) == users(store, "ann", "bob", "cat")
    store.clock.set(NOW + timedelta(minutes=59))
    assert recompute.run_due(store) == 0
    store.clock.set(NOW + timedelta(hours=1))
    assert recompute.run_due(store) == 1
    assert members(store, funnel.id) == users(store, "bob", "cat")


def test_schedules_run_their_audience_and_move_on(store, shoppers):
    audience = create(store, shoppers, QUERY)
    recompute.run_due(store)
    schedule = schedules.add_schedule(store, shoppers, audience.id, "PERIODIC", {"interval": "1h"})
    first = schedule.next_execution
    store.clock.set(NOW + timedelta(hours=1))
    assert recompute.run_due(store) == 1
    [(reason,)] = rows(store, "select reason from compute_run where computation_id = :a order by started_at_ms desc limit 1",
                       a=audience.id)
    assert reason == "schedule"
    assert schedules.get_schedule(store, shoppers, audience.id, schedule.id).next_execution > first


def test_computed_traits_are_stored_as_computed_trait_values(store, shoppers):
    trait = computed_traits.create_computed_trait(store, shoppers, name="Total Spend", definition_type="USERS",
                                                  query="event('Shoes Bought').sum(property('price'))")
    recompute.run_due(store)
    ann = profile_of(store, "user_id", "ann")
    assert traits_of(store, ann)["total_spend"] == 120
    assert rows(store, "select trait_class from trait where key = 'total_spend' and profile_id = :p", p=ann) == [
        ("computed_trait",)]
    send(store, shoppers, track("ann", "Shoes Bought", NOW, price=30))
    recompute.process_dirty(store)
    assert traits_of(store, ann)["total_spend"] == 150
    assert computed_traits.get_computed_trait(store, shoppers, trait.id).status == "Live"


def test_a_rerun_leaves_computed_values_alone_that_are_equal_however_spelled(store, shoppers):
    trait = computed_traits.create_computed_trait(store, shoppers, name="Total Spend", definition_type="USERS",
                                                  query="event('Shoes Bought').sum(property('price'))")
    runs.run(store, trait.id, reason="forced")
    ann = profile_of(store, "user_id", "ann")
    with store.write() as session:
        session.execute(text("update trait set value = '120.0' where key = 'total_spend' and profile_id = :p"),
                        {"p": ann})
    rerun = runs.run(store, trait.id, reason="forced")
    assert (rerun.entered, rerun.exited) == (0, 0)
    assert traits_of(store, ann)["total_spend"] == 120.0


def test_merges_recompute_the_merged_profile(store, shoppers):
    audience = create(store, shoppers, QUERY, filterByExternalIds=["user_id", "anonymous_id"])
    recompute.run_due(store)
    recompute.process_dirty(store)
    anonymous = profile_of(store, "anonymous_id", "anon-1")
    assert anonymous in members(store, audience.id)
    send(store, shoppers, {"type": "identify", "userId": "bob", "anonymousId": "anon-1"})
    recompute.process_dirty(store)
    bob = profile_of(store, "user_id", "bob")
    assert members(store, audience.id) == users(store, "ann") | {bob}
