"""Insight tools: an audience's size history from the membership rows real runs wrote, across a
definition change, and the overlap of audiences against counts made here."""

import random
from datetime import timedelta

import pytest

from store.catalog import audiences, computed_traits
from store.compute import runs
from tests.conftest import NOW
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio
DAY0 = (NOW - timedelta(days=3)).replace(hour=0, minute=0)


def at(store, days: int, hours: int = 10):
    store.clock.set(DAY0 + timedelta(days=days, hours=hours))


def sign_up(store, space_id, user: str, plan: str):
    send(store, space_id, {"type": "identify", "userId": user, "traits": {"plan": plan}, "timestamp": store.now().isoformat()},
         {"type": "track", "userId": user, "event": "Signed Up", "timestamp": store.now().isoformat()})


async def test_size_history_follows_the_runs_across_a_definition_change(store, space_id, call):
    at(store, 0)
    sign_up(store, space_id, "ann", "pro")
    sign_up(store, space_id, "bob", "free")
    signed_up = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                          query="event('Signed Up').count() >= 1")
    runs.run(store, signed_up.id, reason="initial")
    at(store, 1)
    sign_up(store, space_id, "cy", "free")
    runs.run(store, signed_up.id, reason="forced")
    at(store, 2)
    audiences.update_audience(store, space_id, signed_up.id,
                              query="event('Signed Up').count() >= 1 AND trait('plan') = 'pro'")
    runs.run(store, signed_up.id, reason="cadence")
    at(store, 3, hours=1)

    history = (await call.ok("get_audience_size_history", spaceId=space_id, id=signed_up.id,
                             startTime=DAY0.isoformat(), endTime=(DAY0 + timedelta(days=3)).isoformat(),
                             granularity="DAY"))["sizeHistory"]

    assert [(b["startTime"][:10], b["size"], b["entered"], b["exited"]) for b in history["buckets"]] == [
        (DAY0.date().isoformat(), 2, 2, 0),
        ((DAY0 + timedelta(days=1)).date().isoformat(), 3, 1, 0),
        ((DAY0 + timedelta(days=2)).date().isoformat(), 1, 0, 2)]
    assert [(c["changedAt"][:13], "plan" in c["query"]) for c in history["definitionChanges"]] == [
        ((DAY0 + timedelta(hours=10)).isoformat()[:13], False), ((DAY0 + timedelta(days=2, hours=10)).isoformat()[:13], True)]
    assert [(r["reason"], r["size"]) for r in history["runs"]] == [("initial", 2), ("forced", 3), ("cadence", 1)]
    assert history["runsTruncated"] is False


async def test_hourly_buckets_start_with_the_members_from_before_the_range(store, space_id, call):
    at(store, 0)
    sign_up(store, space_id, "ann", "pro")
    signed_up = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                          query="event('Signed Up').count() >= 1")
    runs.run(store, signed_up.id, reason="initial")
    at(store, 0, hours=12)
    sign_up(store, space_id, "bob", "pro")
    runs.run(store, signed_up.id, reason="forced")

    history = (await call.ok("get_audience_size_history", spaceId=space_id, id=signed_up.id,
                             startTime=(DAY0 + timedelta(hours=11, minutes=30)).isoformat(),
                             endTime=(DAY0 + timedelta(hours=13, minutes=1)).isoformat(),
                             granularity="HOUR"))["sizeHistory"]

    assert history["startTime"] == (DAY0 + timedelta(hours=11)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert [(b["size"], b["entered"]) for b in history["buckets"]] == [(1, 0), (2, 1), (2, 0)]
    assert [r["reason"] for r in history["runs"]] == ["forced"] and history["definitionChanges"] == []


async def test_a_computed_traits_size_history_counts_profiles_with_a_value(store, space_id, call):
    at(store, 0)
    sign_up(store, space_id, "ann", "pro")
    trait = computed_traits.create_computed_trait(store, space_id, name="Sign-ups", definition_type="USERS",
                                                  query="event('Signed Up').count()")
    runs.run(store, trait.id, reason="initial")
    at(store, 1)
    sign_up(store, space_id, "ann", "pro")
    runs.run(store, trait.id, reason="forced")

    history = (await call.ok("get_audience_size_history", spaceId=space_id, id=trait.id,
                             startTime=DAY0.isoformat(), endTime=(DAY0 + timedelta(days=2)).isoformat()))["sizeHistory"]

    assert [(b["size"], b["entered"], b["exited"]) for b in history["buckets"]] == [(1, 1, 0), (1, 1, 1)]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"endTime": "2026-11-01T00:00:00Z"}, "endTime", "after startTime"),
    ({"startTime": "2026-01-01T00:00:00Z", "granularity": "HOUR"}, "startTime", "use DAY or a shorter range"),
    ({"id": "aud_nope"}, "id", "not found"),
    ({"startTime": "2026-11-01T00:00:00"}, "startTime", "timezone"),
])
async def test_size_history_refuses_what_it_cannot_answer(store, space_id, call, change, field, words):
    arguments = {"spaceId": space_id, "id": audiences.create_audience(
        store, space_id, name="A", audience_type="USERS", query="event('x').count() >= 1").id,
        "startTime": "2026-11-02T00:00:00Z", "endTime": "2026-11-20T00:00:00Z", "granularity": "DAY"} | change

    error = await call.error("get_audience_size_history", **arguments)

    assert error["field"] == field and words in error["message"], error


async def test_overlap_matches_the_members_counted_here(store, space_id, call):
    rng = random.Random(3)
    names = ("a", "b", "c")
    users = {f"user-{n}": {name: rng.random() < 0.5 for name in names} for n in range(60)}
    send(store, space_id, *[{"type": "identify", "userId": user, "traits": flags} for user, flags in users.items()])
    ids = []
    for name in names:
        audience = audiences.create_audience(store, space_id, name=f"Has {name}", audience_type="USERS",
                                             query=f"trait('{name}') = true")
        runs.run(store, audience.id, reason="initial")
        ids.append(audience.id)
    members = {audience_id: {u for u, flags in users.items() if flags[name]} for audience_id, name in zip(ids, names)}

    found = (await call.ok("get_audience_overlap", spaceId=space_id, audienceIds=ids, baseAudienceId=ids[1]))["overlap"]

    assert {a["id"]: a["size"] for a in found["audiences"]} == {i: len(m) for i, m in members.items()}
    assert {tuple(p["audienceIds"]): p["intersection"] for p in found["pairs"]} == {
        (ids[i], ids[j]): len(members[ids[i]] & members[ids[j]]) for i in range(3) for j in range(i + 1, 3)}
    assert found["unionSize"] == len(set().union(*members.values()))
    assert {s["audienceId"]: (s["members"], s["share"]) for s in found["base"]["shares"]} == {
        other: (len(members[ids[1]] & members[other]), round(len(members[ids[1]] & members[other]) / len(members[ids[1]]), 4))
        for other in (ids[0], ids[2])}


@pytest.mark.parametrize(("arguments", "field"), [
    (lambda ids: {"audienceIds": ids[:1]}, "audienceIds"),
    (lambda ids: {"audienceIds": [ids[0], ids[0]]}, "audienceIds"),
    (lambda ids: {"audienceIds": [ids[0], "aud_nope"]}, "id"),
    (lambda ids: {"audienceIds": ids, "baseAudienceId": "aud_other"}, "baseAudienceId"),
])
async def test_overlap_refuses_what_it_cannot_answer(store, space_id, call, arguments, field):
    ids = [audiences.create_audience(store, space_id, name=f"A{n}", audience_type="USERS",
                                     query="event('x').count() >= 1").id for n in range(2)]

    error = await call.error("get_audience_overlap", spaceId=space_id, **arguments(ids))

    assert error["field"] == field, error
