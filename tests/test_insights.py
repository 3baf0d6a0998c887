"""Insight tools: an audience's size history from the membership rows real runs wrote, across a
definition change, and the overlap of audiences against counts made here."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from backend.cql.blocks import top_level_blocks
from store.analytic import tables as analytic
from store.analytic.store import open_analytic_store
from store.catalog import audiences, computed_traits
from store.compute import runs
from store.insights import breakdown, overlap
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


def test_overlap_on_the_analytic_store_follows_the_members_as_they_change(tmp_path, store, space_id):
    rng = random.Random(7)
    names = ("a", "b", "c")
    users = {f"user-{n}": {name: rng.random() < 0.5 for name in names} for n in range(50)}
    send(store, space_id, *[{"type": "identify", "userId": user, "traits": flags} for user, flags in users.items()])
    ids = [audiences.create_audience(store, space_id, name=f"Has {name}", audience_type="USERS",
                                     query=f"trait('{name}') = true").id for name in names]
    for audience_id in ids:
        runs.run(store, audience_id, reason="initial")

    def expected():
        members = [{user for user, flags in users.items() if flags[name]} for name in names]
        return ([len(m) for m in members], [len(members[i] & members[j]) for i in range(3) for j in range(i + 1, 3)],
                len(set().union(*members)))

    def counted():
        found = overlap.overlap(store, space_id, ids)
        return [found.sizes[i] for i in ids], [pair.intersection for pair in found.pairs], found.union

    store.analytics = open_analytic_store(store, f"duckdb:{tmp_path / 'analytic.duckdb'}")
    try:
        store.analytics.catch_up()
        before, first = expected(), counted()
        changed = {user: {name: rng.random() < 0.5 for name in names} for user in rng.sample(sorted(users), 20)}
        send(store, space_id, *[{"type": "identify", "userId": user, "traits": flags} for user, flags in changed.items()])
        users.update(changed)
        for audience_id in ids:
            runs.run(store, audience_id, reason="forced")
        after = counted()
        audiences.remove_audience(store, space_id, ids[2])
        overlap.overlap(store, space_id, ids[:2])
        copies = store.analytics.engine.run(select(analytic.COMPUTED_VALUE.c.computation_id).distinct())
    finally:
        store.analytics.close()
        store.analytics = None

    assert first == before and after == expected() != before
    assert sorted(row[0] for row in copies) == sorted(ids[:2])  # the deleted audience's copy is dropped


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


@pytest.fixture
def shoppers(store, space_id):
    """40 profiles with a plan, a spend and an email; an audience of the pro ones or the big spenders."""
    rng = random.Random(5)
    people = {f"user-{n}": {"plan": rng.choice(["pro", "free", "team"]), "spend": rng.randrange(0, 500)}
              for n in range(40)}
    send(store, space_id, *[{"type": "identify", "userId": user, "traits": {**traits, "email": f"{user}@example.com"}}
                            for user, traits in people.items()])
    audience = audiences.create_audience(store, space_id, name="Valuable", audience_type="USERS",
                                         query="trait('plan') = 'pro' OR trait('spend') >= 300")
    runs.run(store, audience.id, reason="initial")
    members = {user: traits for user, traits in people.items() if traits["plan"] == "pro" or traits["spend"] >= 300}
    return audience, people, members


async def test_a_breakdown_counts_a_traits_values_among_members_and_sizes_each_block(store, space_id, call, shoppers):
    audience, people, members = shoppers

    found = (await call.ok("get_audience_breakdown", spaceId=space_id, id=audience.id, traitKey="plan"))["breakdown"]

    plans = {}
    for traits in members.values():
        plans[traits["plan"]] = plans.get(traits["plan"], 0) + 1
    assert (found["members"], found["withValue"]) == (len(members), len(members))
    assert {v["value"]: v["count"] for v in found["values"]} == plans
    assert [v["count"] for v in found["values"]] == sorted(plans.values(), reverse=True)
    assert found["operator"] == "OR"
    assert [(b["query"], b["size"]) for b in found["blocks"]] == [
        ("trait('plan') = 'pro'", sum(t["plan"] == "pro" for t in people.values())),
        ("trait('spend') >= 300", sum(t["spend"] >= 300 for t in people.values()))]


async def test_a_breakdown_bins_a_number_with_many_values(store, space_id, call, shoppers):
    audience, _, members = shoppers

    found = (await call.ok("get_audience_breakdown", spaceId=space_id, id=audience.id, traitKey="spend"))["breakdown"]

    spends = [traits["spend"] for traits in members.values()]
    assert len(set(spends)) > 20 and found["values"] == []
    assert (found["bins"][0]["low"], found["bins"][-1]["high"]) == (min(spends), max(spends))
    assert sum(b["count"] for b in found["bins"]) == len(spends)
    assert found["bins"][-1]["count"] == sum(s >= found["bins"][-1]["low"] for s in spends)


async def test_a_breakdown_by_identifier_type_counts_members_with_one(store, space_id, call, shoppers):
    audience, _, members = shoppers

    found = (await call.ok("get_audience_breakdown", spaceId=space_id, id=audience.id,
                           identifierType="email"))["breakdown"]

    assert found["withValue"] == len(members)
    assert {v["value"] for v in found["values"]} <= {f"{user}@example.com" for user in members}


async def test_a_breakdown_needs_one_of_trait_key_and_identifier_type(store, space_id, call, shoppers):
    audience, _, _ = shoppers

    neither = await call.error("get_audience_breakdown", spaceId=space_id, id=audience.id)
    both = await call.error("get_audience_breakdown", spaceId=space_id, id=audience.id, traitKey="plan",
                            identifierType="email")

    assert neither["field"] == both["field"] == "traitKey"


@pytest.mark.parametrize(("query", "expected"), [
    ("trait('a') = 1", (None, ["trait('a') = 1"])),
    ("(trait('a') = 1 AND trait('b') = 2)", ("AND", ["trait('a') = 1", "trait('b') = 2"])),
    ("trait('a') = 1 AND (trait('b') = 2 OR trait('c') = 3) OR trait('d') = 4",
     ("OR", ["trait('a') = 1 AND (trait('b') = 2 OR trait('c') = 3)", "trait('d') = 4"])),
    ("event('E').where(property('a') = 1 AND property('b') = 2).count() >= 1",
     (None, ["event('E').where(property('a') = 1 AND property('b') = 2).count() >= 1"])),
    ("trait('s') = 'x AND y'\n  AND NOT trait('t') = 'it\\'s'", ("AND", ["trait('s') = 'x AND y'", "NOT trait('t') = 'it\\'s'"])),
])
def test_top_level_blocks_are_the_texts_the_outermost_operator_joins(query, expected):
    assert top_level_blocks(query) == expected


def test_block_sizes_are_the_same_computed_on_the_analytic_store(tmp_path, store, space_id, shoppers):
    audience, _, _ = shoppers
    alone = breakdown.breakdown(store, space_id, audience.id, trait_key="plan").blocks
    option = f"duckdb:{tmp_path / 'analytic.duckdb'}"
    store.analytics = open_analytic_store(store, option)
    try:
        store.analytics.catch_up()
        on_duckdb = breakdown.breakdown(store, space_id, audience.id, trait_key="plan").blocks
    finally:
        store.analytics.close()
        store.analytics = None

    assert on_duckdb == alone and all(block.size for block in alone)
