"""Experiment splits: deterministic groups that hold under churn and move only the shifted share,
holdouts sent nothing, a connection targeting one group, the group in delivered events, and the
size history and overlap per group."""

from collections import Counter
from datetime import timedelta

import pytest
import respx

from backend.splits import Group, bucket, group_of
from store.compute import runs
from tests.conftest import NOW
from tests.delivery_helpers import activate, audience, bodies, connect, deliver, sign_up, webhook
from tests.ingest_helpers import rows

pytestmark = pytest.mark.anyio
GROUPS = [{"name": "control", "percentage": 40}, {"name": "treatment", "percentage": 40},
          {"name": "holdout", "percentage": 20, "holdout": True}]
USERS = [f"user-{n}" for n in range(60)]


def groups(*documents) -> list[Group]:
    return [Group(d["name"], d["percentage"], d.get("holdout", False)) for d in documents]


def stays(store, audience_id) -> dict[str, str]:
    """Each open stay's split group, by user id."""
    return dict(rows(store, "select i.value, m.split_group from membership m join identifier i "
                            "on i.profile_id = m.profile_id and i.type = 'user_id' "
                            "where m.computation_id = :a and m.exited_at_ms is null", a=audience_id))


def profile_ids(store) -> dict[str, str]:
    return dict(rows(store, "select value, profile_id from identifier where type = 'user_id'"))


def queued(store, target_id, transition="entered") -> set[str]:
    return {user for (user,) in rows(store, "select i.value from outbox o join identifier i on i.profile_id = "
                                            "o.profile_id and i.type = 'user_id' where o.target_id = :t and "
                                            "o.transition = :tr", t=target_id, tr=transition)}


@pytest.fixture
def members(store, space_id):
    sign_up(store, space_id, *USERS)
    return audience(store, space_id)


def test_a_profiles_group_depends_only_on_its_id_the_salt_and_the_percentages():
    ids = [f"use_{n:05d}" for n in range(5_000)]
    before = groups(*GROUPS)
    after = groups({"name": "control", "percentage": 30}, {"name": "treatment", "percentage": 50},
                   {"name": "holdout", "percentage": 20, "holdout": True})

    first = {i: group_of(before, "s", i).name for i in ids}
    moved = {i for i in ids if group_of(after, "s", i).name != first[i]}

    assert {i: group_of(before, "s", i).name for i in reversed(ids[::2])} == {i: first[i] for i in ids[::2]}
    assert moved == {i for i in ids if 30 <= bucket("s", i) < 40}
    assert all(first[i] == "control" and group_of(after, "s", i).name == "treatment" for i in moved)
    shares = Counter(first.values())
    assert abs(shares["control"] / 5_000 - 0.4) < 0.03 and abs(shares["holdout"] / 5_000 - 0.2) < 0.03
    assert [group_of(before, "other salt", i).name for i in ids[:50]] != [first[i] for i in ids[:50]]


async def test_every_stay_keeps_its_group_and_newcomers_get_theirs(store, space_id, call, members):
    split = (await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS,
                           salt="exp-1"))["audienceSplit"]
    given = stays(store, members.id)
    sign_up(store, space_id, *(f"late-{n}" for n in range(30)))
    runs.run(store, members.id, reason="forced")

    now = stays(store, members.id)
    ids = profile_ids(store)
    assert {user: now[user] for user in given} == given
    assert now == {user: group_of(groups(*GROUPS), "exp-1", ids[user]).name for user in now}
    assert split["salt"] == "exp-1" and len(now) == 90
    counted = (await call.ok("get_audience_split", spaceId=space_id, audienceId=members.id))["audienceSplit"]
    assert {g["name"]: g["members"] for g in counted["groups"]} == dict(Counter(now.values()))


async def test_holdouts_are_sent_nowhere_and_a_connection_aiming_at_a_group_gets_only_it(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    everyone = connect(store, space_id, members.id, "webhooks-actions", {})
    aimed = connect(store, space_id, members.id, "webhooks-actions", {}, connection_settings={"splitGroup": "treatment"})
    to_everyone = activate(store, space_id, members.id, everyone.id, mapping=webhook("https://a.example.com/in"))
    to_treatment = activate(store, space_id, members.id, aimed.id, mapping=webhook("https://b.example.com/in"))

    grouped = stays(store, members.id)
    assert queued(store, to_everyone.id) == {u for u, g in grouped.items() if g != "holdout"}
    assert queued(store, to_treatment.id) == {u for u, g in grouped.items() if g == "treatment"}
    assert {u for u, g in grouped.items() if g == "holdout"} and set(grouped) == set(USERS)


async def test_delivered_events_carry_the_group_in_context_personas(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id, mapping=webhook())
    grouped = stays(store, members.id)

    with respx.mock:
        route = respx.post("https://hooks.example.com/in").respond(200)
        await deliver(store)

    sent = {event["userId"]: event["context"]["personas"]["split_group"] for event in bodies(route)}
    assert sent == {u: g for u, g in grouped.items() if g != "holdout"}


async def test_new_holdout_members_are_sent_an_exit_and_removing_the_split_sends_them_back_keeping_the_stays(store, space_id, call, members):
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activation = activate(store, space_id, members.id, connection.id, "Audience Membership Changed", mapping=webhook())
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    grouped = stays(store, members.id)
    held = {u for u, g in grouped.items() if g == "holdout"}

    assert queued(store, activation.id, "exited") == held
    await call.ok("remove_audience_split", spaceId=space_id, audienceId=members.id)
    assert stays(store, members.id) == grouped
    assert queued(store, activation.id, "entered") == set(USERS)
    assert rows(store, "select count(*) from outbox where target_id = :t and transition = 'entered'",
                t=activation.id) == [(len(USERS) + len(held),)]


async def test_changing_percentages_moves_only_the_shifted_share_and_sends_its_changes(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS, salt="exp")
    aimed = connect(store, space_id, members.id, "webhooks-actions", {}, connection_settings={"splitGroup": "treatment"})
    activation = activate(store, space_id, members.id, aimed.id, "Audience Membership Changed", mapping=webhook())
    before = stays(store, members.id)
    store.clock.set(NOW + timedelta(hours=1))

    changed = await call.ok("update_audience_split", spaceId=space_id, audienceId=members.id, groups=[
        {"name": "control", "percentage": 20}, {"name": "treatment", "percentage": 60},
        {"name": "holdout", "percentage": 20, "holdout": True}])

    after = stays(store, members.id)
    ids = profile_ids(store)
    moved = {u for u in USERS if after[u] != before[u]}
    assert moved == {u for u in USERS if 20 <= bucket("exp", ids[u]) < 40} and changed["moved"] == len(moved)
    assert moved and all(before[u] == "control" and after[u] == "treatment" for u in moved)
    assert queued(store, activation.id, "entered") == {u for u, g in before.items() if g == "treatment"} | moved
    history = (await call.ok("get_audience_size_history", spaceId=space_id, id=members.id, splitGroup="treatment",
                             startTime=NOW.isoformat(), endTime=(NOW + timedelta(hours=1, minutes=30)).isoformat(),
                             granularity="HOUR"))["sizeHistory"]
    treated = Counter(before.values())["treatment"]
    assert [(b["size"], b["entered"]) for b in history["buckets"]] == [(treated, treated), (treated + len(moved), len(moved))]


async def test_overlap_answers_per_group(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    everyone = audience(store, space_id, name="Everyone", query="event('Signed Up').count() >= 0")
    grouped = stays(store, members.id)

    found = (await call.ok("get_audience_overlap", spaceId=space_id, audienceIds=[members.id, everyone.id],
                           splitGroups={members.id: "control"}))["overlap"]

    controls = Counter(grouped.values())["control"]
    assert found["audiences"][0]["size"] == controls and found["pairs"][0]["intersection"] == controls


@pytest.mark.parametrize(("given", "field"), [
    ([{"name": "a", "percentage": 50}, {"name": "b", "percentage": 40}], "groups"),
    ([{"name": "a", "percentage": 50}, {"name": "a", "percentage": 50}], "groups[1].name"),
    ([{"name": "a", "percentage": 100}], "groups"),
])
async def test_groups_that_make_no_split_are_refused(store, space_id, call, members, given, field):
    error = await call.error("create_audience_split", spaceId=space_id, audienceId=members.id, groups=given)
    assert error["field"] == field


async def test_a_group_a_connection_aims_at_cannot_go_nor_the_split_with_it(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    aimed = connect(store, space_id, members.id, "webhooks-actions", {}, connection_settings={"splitGroup": "treatment"})

    renamed = await call.error("update_audience_split", spaceId=space_id, audienceId=members.id, groups=[
        {"name": "control", "percentage": 50}, {"name": "variant", "percentage": 50}])
    removed = await call.error("remove_audience_split", spaceId=space_id, audienceId=members.id)
    twice = await call.error("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    unknown = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=members.id,
                               destination={"id": aimed.destination_id, "type": "destination"},
                               connectionSettings={"splitGroup": "variant"})

    assert renamed["type"] == removed["type"] == twice["type"] == "conflict"
    assert aimed.id in renamed["message"] and aimed.id in removed["message"]
    assert unknown["field"] == "connectionSettings.splitGroup" and "control, treatment, holdout" in unknown["message"]


async def test_an_activation_can_aim_at_a_group_of_its_own(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    everyone = connect(store, space_id, members.id, "webhooks-actions", {})
    aimed = connect(store, space_id, members.id, "webhooks-actions", {}, connection_settings={"splitGroup": "treatment"})

    def activation(connection_id, group):
        return call.ok("add_activation_to_audience", spaceId=space_id, audienceId=members.id, connectionId=connection_id,
                       activationName=f"Only {group}", activationType="Audience Entered", performResync=True,
                       personalization={}, destinationMapping=webhook(), splitGroup=group)

    control = (await activation(everyone.id, "control"))["activation"]
    mismatch = await call.error("add_activation_to_audience", spaceId=space_id, audienceId=members.id,
                                connectionId=aimed.id, activationName="Wrong", activationType="Audience Entered",
                                performResync=True, personalization={}, destinationMapping=webhook(),
                                splitGroup="control")
    dropped = await call.error("update_audience_split", spaceId=space_id, audienceId=members.id, groups=[
        {"name": "treatment", "percentage": 80}, {"name": "holdout", "percentage": 20, "holdout": True}])

    assert control["splitGroup"] == "control"
    assert queued(store, control["id"]) == {u for u, g in stays(store, members.id).items() if g == "control"}
    assert mismatch["field"] == "splitGroup" and aimed.id in mismatch["message"]
    assert dropped["type"] == "conflict" and control["id"] in dropped["message"]


async def test_aiming_a_connection_at_another_group_sends_the_exits_and_entries_it_makes(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    aimed = connect(store, space_id, members.id, "webhooks-actions", {}, connection_settings={"splitGroup": "treatment"})
    activation = activate(store, space_id, members.id, aimed.id, "Audience Membership Changed", mapping=webhook())
    grouped = stays(store, members.id)
    treatment, control = ({u for u, g in grouped.items() if g == name} for name in ("treatment", "control"))

    await call.ok("update_destination_for_audience", spaceId=space_id, audienceId=members.id, destinationId=aimed.id,
                  connectionSettings={"splitGroup": "control"})
    moved = queued(store, activation.id, "exited"), queued(store, activation.id, "entered")
    await call.ok("update_destination_for_audience", spaceId=space_id, audienceId=members.id, destinationId=aimed.id,
                  connectionSettings={"splitGroup": None})
    widened = queued(store, activation.id, "exited"), queued(store, activation.id, "entered")

    assert treatment and control and moved == (treatment, treatment | control)
    assert widened == (treatment, treatment | control)  # every group but the holdout: treatment entered again
    assert rows(store, "select count(*) from outbox where target_id = :t and transition = 'entered'",
                t=activation.id) == [(2 * len(treatment) + len(control),)]


async def test_aiming_an_activation_at_another_group_while_resyncing_sends_the_exits_and_one_entry_each(store, space_id, call, members):
    await call.ok("create_audience_split", spaceId=space_id, audienceId=members.id, groups=GROUPS)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activation = (await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=members.id,
                                connectionId=connection.id, activationName="Treatment",
                                activationType="Audience Membership Changed", performResync=True, personalization={},
                                destinationMapping=webhook(), splitGroup="treatment"))["activation"]
    grouped = stays(store, members.id)
    treatment, control = ({u for u, g in grouped.items() if g == name} for name in ("treatment", "control"))

    await call.ok("update_activation_for_audience", spaceId=space_id, audienceId=members.id, id=activation["id"],
                  splitGroup="control", performResync=True)

    assert treatment and control and queued(store, activation["id"], "exited") == treatment
    assert queued(store, activation["id"], "entered") == treatment | control
    assert rows(store, "select count(*) from outbox where target_id = :t and transition = 'entered'",
                t=activation["id"]) == [(len(treatment) + len(control),)]
