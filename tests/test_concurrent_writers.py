"""Two servers writing to one database at once, as two `serve` processes on two hosts would: each is a
Store of its own, so nothing in-process keeps them apart. Ingest keeps one profile per person however
their batches interleave, subscriptions replaced at once both take effect (the later wins), and a
write that loses a race is refused whole, as a conflict to retry. A realtime pass never takes the
recompute mark of a batch still being written, whose events it cannot see yet."""

import functools
import threading

import pytest

from store.catalog import audiences, spaces, subscriptions
from store.compute import recompute, runs
from store.db.errors import Conflict
from tests.databases import on_postgres
from tests.delivery_helpers import wait_until
from tests.held_writes import held_before_commit
from tests.ingest_helpers import canonical_profiles, profile_of, rows, send

PEOPLE = 40


def side_by_side(*work) -> list[BaseException]:
    """Run each callable in its own thread, all released at once; the errors they raised."""
    start, errors = threading.Barrier(len(work)), []

    def run(job):
        start.wait()
        try:
            job()
        except BaseException as error:  # reported to the test, which fails on any
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_servers_ingesting_the_same_people_at_once_keep_one_profile_each(two_servers):
    first, second = two_servers
    space_id = spaces.create_space(first, "Race").space.id

    def identifies():
        for n in range(PEOPLE):
            send(first, space_id, {"type": "identify", "userId": f"u{n}", "anonymousId": f"a{n}"})

    def tracks():
        for n in range(PEOPLE):
            send(second, space_id, {"type": "track", "event": "Viewed", "anonymousId": f"a{n}"},
                 {"type": "track", "event": "Bought", "userId": f"u{n}", "traits": {"email": f"p{n}@x.io"}})

    assert side_by_side(identifies, tracks) == []
    assert len(canonical_profiles(first)) == PEOPLE
    for n in range(PEOPLE):
        assert profile_of(first, "user_id", f"u{n}") == profile_of(first, "anonymous_id", f"a{n}")
    assert rows(first, "select count(*) from event") == [(3 * PEOPLE,)]


def test_two_servers_replacing_the_same_subscriptions_at_once_both_succeed(two_servers):
    first, second = two_servers
    space_id = spaces.create_space(first, "Subscriptions").space.id

    def replaces(store, group_status):
        def run():
            for n in range(PEOPLE):
                [outcome] = subscriptions.replace_subscriptions(store, space_id, [
                    {"key": f"p{n}@x.io", "type": "EMAIL", "status": "SUBSCRIBED",
                     "groups": [{"name": "News", "status": group_status}]}])
                assert not outcome.errors, outcome.errors
        return run

    assert side_by_side(replaces(first, "SUBSCRIBED"), replaces(second, "UNSUBSCRIBED")) == []
    assert rows(first, "select count(*) from messaging_subscription") == [(PEOPLE,)]
    assert rows(first, "select name from subscription_group") == [("News",)]
    assert rows(first, "select count(*) from group_subscription") == [(PEOPLE,)]


@pytest.mark.skipif(not on_postgres(), reason="SQLite runs one writer at a time, so no write can lose a race")
def test_a_write_that_loses_a_race_is_a_conflict_to_retry_and_writes_nothing(two_servers):
    first, second = two_servers
    outcome: list[object] = []

    def create_race_space():
        try:
            outcome.append(spaces.create_space(second, "Race"))
        except Conflict as conflict:
            outcome.append(conflict)

    with first.write() as session:
        spaces._create(session, first, "Race")
        session.flush()
        racer = threading.Thread(target=create_race_space)
        racer.start()
        wait_until(lambda: rows(first, "select count(*) from pg_locks where not granted") == [(1,)])
    racer.join()

    [conflict] = outcome
    assert isinstance(conflict, Conflict) and "retry" in conflict.message
    assert rows(first, "select slug from space") == [("race",)]
    assert spaces.create_space(second, "Race").space.slug == "race-2"
    assert rows(first, "select count(*) from space") == [(2,)]


@pytest.mark.skipif(not on_postgres(), reason="SQLite runs one writer at a time, so no pass runs beside a batch")
def test_a_realtime_pass_leaves_the_mark_of_a_batch_not_yet_committed(two_servers, monkeypatch):
    ingesting, worker = two_servers
    space_id = spaces.create_space(ingesting, "Marks").space.id
    signed_up = audiences.create_audience(ingesting, space_id, name="Signed Up", audience_type="USERS",
                                          query="event('Signed Up').count() >= 1", options=None)
    runs.run(worker, signed_up.id, reason="initial")
    send(ingesting, space_id, {"type": "identify", "userId": "u1"})  # marked, not yet recomputed
    batch = functools.partial(send, ingesting, space_id, {"type": "track", "userId": "u1", "event": "Signed Up"})
    with held_before_commit(monkeypatch, ingesting, batch):
        passed_over = recompute.process_dirty(worker)

    assert passed_over == 0, "the pass took a mark whose batch it cannot see yet"
    assert recompute.process_dirty(worker) == 1
    assert rows(worker, "select count(*) from membership where computation_id = :a", a=signed_up.id) == [(1,)]
