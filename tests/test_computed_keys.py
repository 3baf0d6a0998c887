"""Computed values are written only by runs: an Identify or a Group that names an audience's or a
computed trait's key stores its message, but that trait is dropped from the profile and counted."""

from datetime import timedelta

from store.catalog import audiences, computed_traits
from store.compute import recompute, runs
from tests.conftest import NOW
from tests.ingest_helpers import profile_of, rows, send, traits_of


def bought(user, days_ago=1):
    return {"type": "track", "userId": user, "event": "Shoes Bought", "properties": {"price": 120},
            "timestamp": (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")}


def members(store, audience_id):
    found = rows(store, "select profile_id from membership where computation_id = :a and exited_at_ms is null",
                 a=audience_id)
    return {profile_id for (profile_id,) in found}


def test_an_identify_naming_an_audience_key_does_not_make_its_sender_a_member_of_an_audience_reading_it(store, space_id):
    send(store, space_id, bought("ann"))
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                       query="event('Shoes Bought').count() >= 1")
    vips = audiences.create_audience(store, space_id, name="VIPs", audience_type="USERS", query="trait('buyers') = true")
    result = send(store, space_id, {"type": "identify", "userId": "mallory", "traits": {"buyers": True, "plan": "pro"}})
    runs.run(store, buyers.id, reason="forced")
    runs.run(store, vips.id, reason="forced")

    ann, mallory = profile_of(store, "user_id", "ann"), profile_of(store, "user_id", "mallory")
    assert members(store, vips.id) == {ann}
    assert traits_of(store, mallory) == {"plan": "pro"}
    assert result.stored == 1 and result.computed_keys_dropped == 1


def test_an_identify_neither_replaces_nor_removes_a_computed_value_and_realtime_passes_go_on(store, space_id):
    send(store, space_id, bought("ann"), bought("bob"))
    count = computed_traits.create_computed_trait(store, space_id, name="Order Count", definition_type="USERS",
                                                  query="event('Shoes Bought').count()")
    recompute.run_due(store)
    recompute.process_dirty(store)
    result = send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"order_count": "hijacked"}},
                  {"type": "identify", "userId": "bob", "traits": {"order_count": None}},
                  bought("ann", days_ago=0))
    recompute.process_dirty(store)

    ann, bob = profile_of(store, "user_id", "ann"), profile_of(store, "user_id", "bob")
    assert traits_of(store, ann)["order_count"] == 2
    assert traits_of(store, bob)["order_count"] == 1
    assert result.computed_keys_dropped == 2
    assert rows(store, "select error from compute_state where computation_id = :c", c=count.id) == [(None,)]


def test_a_new_audience_takes_its_key_over_from_custom_traits_sent_before_it_existed(store, space_id):
    send(store, space_id, bought("ann"), {"type": "identify", "userId": "mallory", "traits": {"buyers": True}})
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                       query="event('Shoes Bought').count() >= 1")
    vips = audiences.create_audience(store, space_id, name="VIPs", audience_type="USERS", query="trait('buyers') = true")
    runs.run(store, buyers.id, reason="forced")
    runs.run(store, vips.id, reason="forced")

    assert members(store, vips.id) == {profile_of(store, "user_id", "ann")}
    assert "buyers" not in traits_of(store, profile_of(store, "user_id", "mallory"))
