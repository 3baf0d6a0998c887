"""Identity resolution as in Segment Unify: identifiers, blocked values, limits, priorities, merges."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from backend.tracking.identity import ExternalId, extract, priority, resolve
from backend.tracking.messages import normalise
from store.db import bulk
from tests.conftest import NOW
from tests.ingest_helpers import canonical_profiles, identifiers_of, profile_of, reads_of, rows, send, traits_of


def ids_of_message(**raw):
    return {(i.type, i.value) for i in extract(normalise({"type": "track", "event": "E", **raw}, NOW))}


def test_a_message_with_unknown_identifiers_creates_a_profile(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"email": "x@y.com"}})
    profile = profile_of(store, "user_id", "u1")
    assert profile.startswith("use_")
    assert identifiers_of(store, profile) == [("anonymous_id", "a1"), ("email", "x@y.com"), ("user_id", "u1")]


def test_a_message_matching_one_profile_joins_it_and_adds_new_identifiers(store, space_id):
    send(store, space_id, {"type": "track", "event": "A", "anonymousId": "a1"})
    send(store, space_id, {"type": "identify", "anonymousId": "a1", "userId": "u1"})
    assert canonical_profiles(store) == [profile_of(store, "anonymous_id", "a1")]
    assert profile_of(store, "user_id", "u1") == profile_of(store, "anonymous_id", "a1")


def test_a_message_matching_two_profiles_merges_them_into_the_older(store, space_id):
    send(store, space_id, {"type": "track", "event": "A", "anonymousId": "a1"})
    older = profile_of(store, "anonymous_id", "a1")
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    newer = profile_of(store, "user_id", "u1")
    send(store, space_id, {"type": "track", "event": "B", "anonymousId": "a1", "userId": "u1"})
    assert canonical_profiles(store) == [older]
    assert identifiers_of(store, older) == [("anonymous_id", "a1"), ("user_id", "u1")]
    assert sorted(r[0] for r in rows(store, "select event from event where profile_id = :p", p=older) if r[0]) == ["A", "B"]
    assert rows(store, "select count(*) from event where profile_id = :p", p=newer) == [(0,)]
    assert traits_of(store, older) == {"plan": "pro"}
    assert rows(store, "select merged_id, canonical_id from profile_merge") == [(newer, older)]
    assert rows(store, "select merged_into from profile where id = :p", p=newer) == [(older,)]
    dirty = {r[0] for r in rows(store, "select profile_id from dirty_profile")}
    assert {older, newer} <= dirty


def test_the_documented_demotion_example_creates_a_new_profile(store, space_id):
    """Profile {user_id: abc123, email: jane@…}; event {user_id: abc456, email: jane@…}: two user_ids
    would exceed the limit of one, so email is demoted and a new profile is made for abc456."""
    send(store, space_id, {"type": "identify", "userId": "abc123", "traits": {"email": "jane@example.com"}})
    send(store, space_id, {"type": "identify", "userId": "abc456", "traits": {"email": "jane@example.com"}})
    first, second = profile_of(store, "user_id", "abc123"), profile_of(store, "user_id", "abc456")
    assert first != second
    assert identifiers_of(store, second) == [("user_id", "abc456")]
    assert profile_of(store, "email", "jane@example.com") == first


def test_a_shared_anonymous_id_does_not_merge_two_users(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "u1", "anonymousId": "shared"})
    send(store, space_id, {"type": "identify", "userId": "u2", "anonymousId": "shared"})
    assert len(canonical_profiles(store)) == 2
    assert profile_of(store, "anonymous_id", "shared") == profile_of(store, "user_id", "u1")


def test_identifiers_beyond_the_limit_of_five_are_demoted(store, space_id):
    for n in range(6):
        send(store, space_id, {"type": "track", "event": "E", "userId": "u1", "anonymousId": f"a{n}"})
    profile = profile_of(store, "user_id", "u1")
    assert [v for t, v in identifiers_of(store, profile) if t == "anonymous_id"] == ["a0", "a1", "a2", "a3", "a4"]
    assert profile_of(store, "anonymous_id", "a5") is None
    assert rows(store, "select count(*) from event where profile_id = :p", p=profile) == [(6,)]


def test_lower_priority_identifiers_are_demoted_first():
    """Priority: user_id, email, then other types alphabetically (android.id before anonymous_id)."""
    found = [ExternalId("users", t, "v") for t in ("anonymous_id", "email", "android.id", "user_id", "ios.id")]
    assert [i.type for i in sorted(found, key=priority)] == ["user_id", "email", "android.id", "anonymous_id", "ios.id"]


@pytest.mark.parametrize("value", ["0", "000", "-", "0-0-0", "-1", "null", "anonymous", ""])
def test_blocked_values_are_never_identifiers(value):
    assert ("anonymous_id", value) not in ids_of_message(anonymousId=value, userId="u1")


def test_blocked_values_stay_in_the_stored_payload(store, space_id):
    send(store, space_id, {"type": "track", "event": "E", "userId": "u1", "anonymousId": "anonymous"})
    assert identifiers_of(store, profile_of(store, "user_id", "u1")) == [("user_id", "u1")]
    assert '"anonymous_id"' not in rows(store, "select external_ids from event")[0][0]


def test_default_identifiers_are_extracted_from_their_documented_places():
    context = {
        "traits": {"email": "ctx@example.com"},
        "device": {"type": "ios", "id": "dev-1", "advertisingId": "ad-1", "adTrackingEnabled": True, "token": "push-1"},
        "integrations": {"Google Analytics": {"clientId": "ga-1"}},
        "externalIds": [{"id": "crm-9", "type": "crm_id", "collection": "users", "encoding": "none"}],
    }
    assert ids_of_message(userId="u1", anonymousId="a1", context=context) == {
        ("user_id", "u1"), ("anonymous_id", "a1"), ("email", "ctx@example.com"), ("ios.id", "dev-1"),
        ("ios.idfa", "ad-1"), ("ios.push_token", "push-1"), ("ga_client_id", "ga-1"), ("crm_id", "crm-9"),
    }


def test_advertising_ids_need_ad_tracking_enabled_and_a_known_device_type():
    android = {"device": {"type": "android", "id": "d", "advertisingId": "ad", "adTrackingEnabled": False}}
    assert ids_of_message(userId="u", context=android) == {("user_id", "u"), ("android.id", "d")}
    unknown = {"device": {"type": "web", "id": "d"}}
    assert ids_of_message(userId="u", context=unknown) == {("user_id", "u")}


def test_email_comes_from_identify_traits_but_not_from_group_traits():
    identify = normalise({"type": "identify", "userId": "u", "traits": {"email": "u@x.com"}}, NOW)
    group = normalise({"type": "group", "userId": "u", "groupId": "g", "traits": {"email": "acme@x.com"}}, NOW)
    assert ("email", "u@x.com") in {(i.type, i.value) for i in extract(identify)}
    assert {(i.collection, i.type, i.value) for i in extract(group)} == {("users", "user_id", "u"), ("accounts", "group_id", "g")}


def test_group_calls_link_users_to_accounts_and_store_account_traits(store, space_id):
    send(store, space_id, {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"plan": "enterprise"}})
    send(store, space_id, {"type": "group", "userId": "u2", "groupId": "acme", "traits": {"employees": 50}})
    send(store, space_id, {"type": "group", "userId": "u1", "groupId": "globex"})
    account = profile_of(store, "group_id", "acme", collection="accounts")
    assert account.startswith("acc_")
    assert traits_of(store, account) == {"plan": "enterprise", "employees": 50}
    assert traits_of(store, profile_of(store, "user_id", "u1")) == {}
    links = rows(store, "select count(*) from profile_link where user_id = :u", u=profile_of(store, "user_id", "u1"))
    assert links == [(2,)]


def test_null_removes_a_trait_and_empty_string_sets_it(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"a": 1, "b": 2}})
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"a": None, "b": ""}})
    assert traits_of(store, profile_of(store, "user_id", "u1")) == {"b": ""}


def test_the_last_received_trait_value_wins_whatever_the_event_time(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "first"}, "timestamp": "2026-11-20T10:00:00Z"})
    store.clock.set(store.now() + timedelta(seconds=1))
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "second"}, "timestamp": "2026-11-19T10:00:00Z"},
         {"type": "identify", "userId": "u1", "traits": {"plan": "third"}, "timestamp": "2026-11-18T10:00:00Z"})
    assert traits_of(store, profile_of(store, "user_id", "u1")) == {"plan": "third"}


def test_merged_traits_keep_the_last_updated_value(store, space_id):
    send(store, space_id, {"type": "identify", "anonymousId": "a1", "traits": {"plan": "old", "color": "red"}})
    store.clock.set(store.now() + timedelta(seconds=1))
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"plan": "new"}})
    send(store, space_id, {"type": "track", "event": "E", "userId": "u1", "anonymousId": "a1"})
    [profile] = canonical_profiles(store)
    assert traits_of(store, profile) == {"plan": "new", "color": "red"}


def test_merges_within_one_batch_keep_every_event(store, space_id):
    send(store, space_id,
         {"type": "track", "event": "A", "anonymousId": "a1"},
         {"type": "track", "event": "B", "userId": "u1"},
         {"type": "track", "event": "C", "userId": "u1", "anonymousId": "a1"},
         {"type": "track", "event": "D", "anonymousId": "a1"})
    [profile] = canonical_profiles(store)
    assert sorted(r[0] for r in rows(store, "select event from event where profile_id = :p", p=profile)) == ["A", "B", "C", "D"]


def test_a_batch_resolves_its_identifiers_in_a_few_statements_however_many_messages_it_has(store, space_id):
    send(store, space_id, *({"type": "identify", "userId": f"u{n}"} for n in range(600)))
    send(store, space_id, *({"type": "track", "event": "Viewed", "anonymousId": f"a{n}"} for n in range(300)))
    with reads_of(store, "identifier") as lookups:
        send(store, space_id, *({"type": "track", "event": "Bought", "userId": f"u{n}"} for n in range(600)),
             *({"type": "identify", "userId": f"u{n}", "anonymousId": f"a{n}"} for n in range(300)))

    assert len(lookups) <= 8  # 900 values and 600 merging profiles, read 300 at a time
    assert len(canonical_profiles(store)) == 600
    assert rows(store, "select count(*) from profile_merge") == [(300,)]
    assert rows(store, "select count(distinct profile_id) from event where event = 'Viewed'") == [(300,)]


def test_a_repeated_message_id_is_stored_once(store, space_id):
    message = {"type": "track", "event": "E", "userId": "u1", "messageId": "m-1"}
    first = send(store, space_id, message, message)
    second = send(store, space_id, message)
    assert (first.stored, first.duplicates, second.stored, second.duplicates) == (1, 1, 0, 1)
    assert rows(store, "select count(*) from event") == [(1,)]


def test_a_failure_mid_batch_stores_nothing(store, space_id, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk, "upsert_newer", broken)
    with pytest.raises(RuntimeError):
        send(store, space_id, {"type": "track", "event": "E", "userId": "u1"}, {"type": "identify", "userId": "u2", "traits": {"a": 1}})
    for table in ("event", "profile", "identifier", "trait", "dirty_profile"):
        assert rows(store, f"select count(*) from {table}") == [(0,)], table


def test_space_filters_drop_events_before_identity_resolution_and_count_them(store, space_id):
    from store.catalog import filters

    dropping = filters.create_filter(store, space_id, "no tests", "event = 'Test Event'", enabled=None, description=None, drop=None)
    filters.create_filter(store, space_id, "disabled", "type = 'track'", enabled=False, description=None, drop=True)
    result = send(store, space_id, {"type": "track", "event": "Test Event", "userId": "ghost"},
                  {"type": "track", "event": "Real", "userId": "u1"})
    assert (result.stored, result.dropped) == (1, 1)
    assert profile_of(store, "user_id", "ghost") is None
    assert filters.get_filter(store, dropping.id).dropped_count == 1


def test_profiles_of_one_space_are_invisible_to_another(store, space_id):
    from store.catalog import spaces

    other = spaces.create_space(store, "Other").space.id
    send(store, space_id, {"type": "identify", "userId": "u1"})
    send(store, other, {"type": "identify", "userId": "u1"})
    with store.engine.connect() as connection:
        assert connection.execute(text("select count(distinct profile_id) from identifier where value = 'u1'")).scalar() == 2


def test_integers_beyond_64_bits_are_stored_exactly(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "u1", "traits": {"big": 2**70}, "properties": {"n": -(2**80)}})
    assert traits_of(store, profile_of(store, "user_id", "u1")) == {"big": 2**70}


class DictGraph:
    """An identity graph held in dicts, to show `resolve`'s decisions without a database."""

    def __init__(self, profiles: dict[str, list[tuple[str, str]]]):
        self.profiles = {p: {ExternalId("users", t, v) for t, v in ids} for p, ids in profiles.items()}

    def owner(self, identifier):
        return next((p for p, ids in self.profiles.items() if identifier in ids), None)

    def identifiers(self, profile_id):
        return self.profiles[profile_id]

    def age(self, profile_id):
        return (list(self.profiles).index(profile_id),)

    def merges(self, profile_id):
        return 0


def test_resolve_reports_which_identifiers_it_demoted():
    graph = DictGraph({"use_old": [("user_id", "abc123"), ("email", "jane@example.com")]})
    incoming = [ExternalId("users", "user_id", "abc456"), ExternalId("users", "email", "jane@example.com")]
    decision = resolve(incoming, graph)
    assert decision.profile_id is None
    assert decision.add == (ExternalId("users", "user_id", "abc456"),)
    assert decision.demoted == (ExternalId("users", "email", "jane@example.com"),)


def test_resolve_merges_into_the_oldest_matching_profile():
    graph = DictGraph({"use_a": [("anonymous_id", "a1")], "use_b": [("user_id", "u1")]})
    decision = resolve([ExternalId("users", "user_id", "u1"), ExternalId("users", "anonymous_id", "a1")], graph)
    assert (decision.profile_id, decision.merge, decision.add, decision.demoted) == ("use_a", ("use_b",), (), ())
