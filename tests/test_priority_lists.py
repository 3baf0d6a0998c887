"""Priority lists: a profile is delivered only as a member of the highest-ranked audience it is in,
and moving between ranked audiences (or reranking them) sends the exits and entries it causes."""

import pytest

from store.catalog import audiences
from store.compute import runs
from tests.delivery_helpers import activate, connect, webhook
from tests.ingest_helpers import rows, send

pytestmark = pytest.mark.anyio


def identify(store, space_id, user, **traits):
    send(store, space_id, {"type": "identify", "userId": user, "traits": traits})


@pytest.fixture
def ranked(store, space_id):
    """Pro (plan pro) above Known (any plan) above Signed Up; ann is in all three, bob in the lower
    two, cy in Signed Up alone; each audience sends through an activation of its own."""
    for user, plan in (("ann", "pro"), ("bob", "free"), ("cy", None)):
        identify(store, space_id, user, **({"plan": plan} if plan else {}))
        send(store, space_id, {"type": "track", "userId": user, "event": "Signed Up"})
    made = {}
    for name, query in (("Pro", "trait('plan') = 'pro'"), ("Known", "trait('plan').exists()"),
                        ("Signed Up", "event('Signed Up').count() >= 1")):
        audience = audiences.create_audience(store, space_id, name=name, audience_type="USERS", query=query)
        runs.run(store, audience.id, reason="initial")
        connection = connect(store, space_id, audience.id, "webhooks-actions", {})
        activation = activate(store, space_id, audience.id, connection.id, "Audience Membership Changed",
                              mapping=webhook(f"https://{audience.key}.example.com/in"))
        made[name] = (audience.id, activation.id)
    return made


class Sent:
    """The outbox rows queued since the last look, as {audience name: {(user, transition)}}."""

    def __init__(self, store, ranked):
        self.store, self.ranked, self.seen = store, ranked, 0

    def since(self) -> dict[str, set[tuple[str, str]]]:
        found = rows(self.store, "select o.id, o.target_id, i.value, o.transition from outbox o join identifier i on "
                                 "i.profile_id = o.profile_id and i.type = 'user_id' where o.id > :seen",
                     seen=self.seen)
        self.seen = max([self.seen, *(row[0] for row in found)])
        names = {activation: name for name, (_, activation) in self.ranked.items()}
        return {name: {(user, transition) for _, target, user, transition in found if names[target] == name}
                for name in self.ranked if any(names[target] == name for _, target, _, _ in found)}


def ids(ranked, *names):
    return [ranked[name][0] for name in names]


async def test_a_new_list_sends_exits_to_the_lower_audiences_of_members_of_higher_ones(store, space_id, call, ranked):
    sent = Sent(store, ranked)
    sent.since()

    made = (await call.ok("create_priority_list", spaceId=space_id, name="Offers",
                          audienceIds=ids(ranked, "Pro", "Known", "Signed Up")))["priorityList"]

    assert sent.since() == {"Known": {("ann", "exited")}, "Signed Up": {("ann", "exited"), ("bob", "exited")}}
    shown = (await call.ok("get_priority_list", spaceId=space_id, id=made["id"]))["priorityList"]
    assert [(a["audienceId"], a["rank"], a["delivered"]) for a in shown["audiences"]] == [
        (ranked["Pro"][0], 0, 1), (ranked["Known"][0], 1, 1), (ranked["Signed Up"][0], 2, 1)]


async def test_entering_a_higher_audience_exits_the_lower_one_and_leaving_it_comes_back(store, space_id, call, ranked):
    await call.ok("create_priority_list", spaceId=space_id, name="Offers", audienceIds=ids(ranked, "Pro", "Known", "Signed Up"))
    sent = Sent(store, ranked)
    sent.since()

    identify(store, space_id, "bob", plan="pro")
    runs.run(store, ranked["Pro"][0], reason="forced")
    assert sent.since() == {"Pro": {("bob", "entered")}, "Known": {("bob", "exited")}}

    identify(store, space_id, "ann", plan="free")
    runs.run(store, ranked["Pro"][0], reason="forced")
    assert sent.since() == {"Pro": {("ann", "exited")}, "Known": {("ann", "entered")}}

    identify(store, space_id, "cy", plan="team")
    runs.run(store, ranked["Known"][0], reason="forced")
    assert sent.since() == {"Known": {("cy", "entered")}, "Signed Up": {("cy", "exited")}}


async def test_reordering_sends_the_exits_and_entries_of_the_new_ranking(store, space_id, call, ranked):
    made = (await call.ok("create_priority_list", spaceId=space_id, name="Offers",
                          audienceIds=ids(ranked, "Pro", "Known", "Signed Up")))["priorityList"]
    sent = Sent(store, ranked)
    sent.since()

    changed = await call.ok("update_priority_list", spaceId=space_id, id=made["id"],
                            audienceIds=ids(ranked, "Signed Up", "Known", "Pro"))

    assert sent.since() == {"Pro": {("ann", "exited")}, "Known": {("bob", "exited")},
                            "Signed Up": {("ann", "entered"), ("bob", "entered")}}
    assert changed["changed"] == 4
    await call.ok("remove_priority_list", spaceId=space_id, id=made["id"])
    assert sent.since() == {"Pro": {("ann", "entered")}, "Known": {("ann", "entered"), ("bob", "entered")}}


async def test_an_audience_on_a_list_cannot_be_removed_nor_be_on_two(store, space_id, call, ranked):
    made = (await call.ok("create_priority_list", spaceId=space_id, name="Offers",
                          audienceIds=ids(ranked, "Pro", "Known")))["priorityList"]

    removal = await call.error("remove_audience_from_space", spaceId=space_id, id=ranked["Pro"][0])
    second = await call.error("create_priority_list", spaceId=space_id, name="Other",
                              audienceIds=ids(ranked, "Signed Up", "Known"))
    twice = await call.error("update_priority_list", spaceId=space_id, id=made["id"],
                             audienceIds=ids(ranked, "Pro", "Pro"))

    assert removal["type"] == "conflict" and made["id"] in removal["message"]
    assert second["type"] == "conflict" and second["field"] == "audienceIds[1]" and made["id"] in second["message"]
    assert twice["field"] == "audienceIds"
