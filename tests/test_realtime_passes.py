"""Realtime passes: one bounded pass per space, a failure for one profile costs that profile only (its
mark is kept and retried with backoff), and a profile changed while a computation's first run is in
progress is recomputed for it once the run has committed, on any number of workers. A space holds a
bounded number of computations."""

import functools
import threading
from datetime import timedelta

import pytest

from store.catalog import audiences, computed_traits, spaces
from store.compute import recompute, runs
from store.db.errors import Conflict
from tests.conftest import NOW
from tests.databases import on_postgres
from tests.delivery_helpers import wait_until
from tests.held_writes import held_before_commit
from tests.ingest_helpers import profile_of, rows, send


def signed_up(*users):
    return [{"type": "track", "userId": user, "event": "Signed Up"} for user in users]


def signed_up_audience(store, space_id, name="Signed Up"):
    return audiences.create_audience(store, space_id, name=name, audience_type="USERS",
                                     query="event('Signed Up').count() >= 1", options=None)


def members(store, audience_id):
    found = rows(store, "select profile_id from membership where computation_id = :a and exited_at_ms is null",
                 a=audience_id)
    return {profile_id for (profile_id,) in found}


def status_of(store, audience_id):
    [(status, error)] = rows(store, "select a.status, s.error from audience a left join compute_state s "
                                    "on s.computation_id = a.id where a.id = :a", a=audience_id)
    return status, error


@pytest.fixture
def failing_for(monkeypatch):
    """Make realtime recomputes fail whenever the profiles they cover include one of the set's."""
    poisoned: set[str] = set()
    apply = runs.apply_realtime

    def apply_unless_poisoned(session, computation, now, profile_ids, *rest):
        if poisoned & set(profile_ids):
            raise RuntimeError("the engine could not compute this profile")
        return apply(session, computation, now, profile_ids, *rest)

    monkeypatch.setattr(runs, "apply_realtime", apply_unless_poisoned)
    return poisoned


def test_a_pass_failing_for_one_profile_commits_the_others_and_keeps_that_ones_mark(store, space_id, failing_for):
    audience = signed_up_audience(store, space_id)
    recompute.run_due(store)
    send(store, space_id, *signed_up(*(f"u{n}" for n in range(10))))
    mallory = profile_of(store, "user_id", "u3")
    failing_for.add(mallory)

    assert recompute.process_dirty(store) == 10

    assert members(store, audience.id) == {profile_of(store, "user_id", f"u{n}") for n in range(10)} - {mallory}
    retry_at_ms = int((NOW + timedelta(seconds=1)).timestamp() * 1000)
    assert rows(store, "select profile_id, attempts, retry_at_ms from dirty_profile") == [(mallory, 1, retry_at_ms)]
    status, error = status_of(store, audience.id)
    assert status == "Failed" and "could not compute this profile" in error


def test_a_failed_profile_is_retried_with_backoff_and_the_computation_is_live_again_once_it_succeeds(
        store, space_id, failing_for):
    audience = signed_up_audience(store, space_id)
    recompute.run_due(store)
    send(store, space_id, *signed_up("ann"))
    ann = profile_of(store, "user_id", "ann")
    failing_for.add(ann)
    recompute.process_dirty(store)
    store.clock.set(NOW + timedelta(seconds=1))
    recompute.process_dirty(store)  # fails again: the next try waits twice as long
    assert rows(store, "select attempts, retry_at_ms from dirty_profile") == [
        (2, int((NOW + timedelta(seconds=3)).timestamp() * 1000))]

    failing_for.clear()
    store.clock.set(NOW + timedelta(seconds=2))
    assert recompute.process_dirty(store) == 0, "the mark is not due before its backoff has passed"
    store.clock.set(NOW + timedelta(seconds=3))
    assert recompute.process_dirty(store) == 1

    assert members(store, audience.id) == {ann}
    assert rows(store, "select count(*) from dirty_profile") == [(0,)]
    assert status_of(store, audience.id) == ("Live", None)


def test_a_pass_recomputes_a_computation_whose_first_run_is_still_to_come_leaving_its_status_to_that_run(
        store, space_id):
    audience = signed_up_audience(store, space_id)
    send(store, space_id, *signed_up("ann"))

    recompute.process_dirty(store)
    assert members(store, audience.id) == {profile_of(store, "user_id", "ann")}
    assert status_of(store, audience.id) == ("Preparing", None)

    recompute.run_due(store)
    assert status_of(store, audience.id) == ("Live", None)
    assert rows(store, "select size from compute_state where computation_id = :a", a=audience.id) == [(1,)]


def test_each_space_gets_its_own_bounded_pass(store, space_id, monkeypatch):
    other = spaces.create_space(store, "Other").space.id
    busy, quiet = signed_up_audience(store, space_id), signed_up_audience(store, other)
    recompute.run_due(store)
    send(store, space_id, *signed_up(*(f"u{n}" for n in range(30))))
    send(store, other, *signed_up("ann"))
    monkeypatch.setattr(recompute, "PASS_WORK", 10)

    assert recompute.process_dirty(store) == 11, "ten of the busy space's profiles, and the quiet space's one"
    assert len(members(store, quiet.id)) == 1 and len(members(store, busy.id)) == 10


@pytest.mark.skipif(not on_postgres(), reason="SQLite runs one writer at a time, so no pass runs beside a first run")
def test_a_profile_changed_while_a_first_run_is_in_progress_is_recomputed_once_it_commits(two_servers, monkeypatch):
    running, passing = two_servers
    space_id = spaces.create_space(running, "First Run").space.id
    audience = signed_up_audience(running, space_id)
    send(running, space_id, *signed_up("ann"))
    first_run = functools.partial(runs.run, running, audience.id, reason="initial")
    with held_before_commit(monkeypatch, running, first_run):
        send(passing, space_id, *signed_up("bob"))  # committed after the run read the events
        recompute.process_dirty(passing)
    recompute.process_dirty(passing)

    assert members(passing, audience.id) == {profile_of(passing, "user_id", user) for user in ("ann", "bob")}


@pytest.mark.skipif(not on_postgres(), reason="SQLite runs one writer at a time, so no pass runs beside a first run")
def test_first_runs_on_two_workers_beside_ingest_miss_no_one(two_servers):
    ingesting, worker = two_servers
    missing = []
    for repetition in range(10):
        space_id = spaces.create_space(ingesting, f"Race {repetition}").space.id
        early = [f"early{repetition}-{n}" for n in range(50)]
        send(ingesting, space_id, *signed_up(*early))
        audience = signed_up_audience(ingesting, space_id)
        sent, done = [], threading.Event()

        def ingest():
            for batch in range(40):
                users = [f"late{repetition}-{batch}-{n}" for n in range(5)]
                send(ingesting, space_id, *signed_up(*users))
                sent.extend(users)
            done.set()

        def realtime():
            while not done.is_set():
                recompute.process_dirty(worker)

        threads = [threading.Thread(target=ingest), threading.Thread(target=realtime)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(sent) >= 20)
        recompute.run_due(ingesting)
        for thread in threads:
            thread.join()
        wait_until(lambda: recompute.process_dirty(worker) == 0
                   and rows(worker, "select count(*) from dirty_profile") == [(0,)])
        everyone = {profile_of(worker, "user_id", user) for user in early + sent}
        missing.append(len(everyone - members(worker, audience.id)))

    assert missing == [0] * 10


def test_a_space_holds_at_most_its_limit_of_audiences_and_computed_traits(store, space_id, monkeypatch):
    monkeypatch.setenv("SEGMENT_AUDIENCES_MAX_COMPUTATIONS", "2")
    first = signed_up_audience(store, space_id, "First")
    signed_up_audience(store, space_id, "Second")

    with pytest.raises(Conflict) as refused:
        computed_traits.create_computed_trait(store, space_id, name="Orders", definition_type="USERS",
                                              query="event('Order Completed').count()")
    assert "(2)" in refused.value.message and "SEGMENT_AUDIENCES_MAX_COMPUTATIONS" in refused.value.message
    audiences.remove_audience(store, space_id, first.id)
    assert signed_up_audience(store, space_id, "Third").key == "third"


@pytest.fixture
def twice(store, space_id):
    """A live audience of those who signed up twice, and ann, marked after her first sign-up."""
    audience = audiences.create_audience(store, space_id, name="Twice", audience_type="USERS", options=None,
                                         query="event('Signed Up').count() >= 2")
    recompute.run_due(store)
    send(store, space_id, *signed_up("ann"))
    return audience


def ingest_after_reads(store, space_id, monkeypatch, times: int) -> None:
    """A sign-up for ann committed just after each of the first `times` passes has read its rows ahead."""
    read_ahead, sent = recompute._read_ahead, []

    def read_then_ingest(*arguments):
        ahead = read_ahead(*arguments)
        if len(sent) < times:
            sent.append(send(store, space_id, *signed_up("ann")))
        return ahead

    monkeypatch.setattr(recompute, "_read_ahead", read_then_ingest)


@pytest.mark.skipif(on_postgres(), reason="passes read ahead of their write transaction on SQLite only")
def test_a_profile_changed_between_a_passs_read_and_its_write_is_left_to_the_next_pass(
        store, space_id, twice, monkeypatch):
    ingest_after_reads(store, space_id, monkeypatch, times=1)

    assert recompute.process_dirty(store) == 0
    assert members(store, twice.id) == set()
    assert recompute.process_dirty(store) == 1
    assert members(store, twice.id) == {profile_of(store, "user_id", "ann")}


@pytest.mark.skipif(on_postgres(), reason="passes read ahead of their write transaction on SQLite only")
def test_a_mark_that_waited_30_s_behind_a_backlog_is_still_left_to_the_next_pass_when_changed_meanwhile(
        store, space_id, twice, monkeypatch):
    ingest_after_reads(store, space_id, monkeypatch, times=1)
    store.clock.set(NOW + timedelta(seconds=30))

    assert recompute.process_dirty(store) == 0
    assert recompute.process_dirty(store) == 1
    assert members(store, twice.id) == {profile_of(store, "user_id", "ann")}


@pytest.mark.skipif(on_postgres(), reason="passes read ahead of their write transaction on SQLite only")
def test_a_profile_left_for_later_for_30_s_and_changed_again_is_recomputed_in_the_write(
        store, space_id, twice, monkeypatch):
    ingest_after_reads(store, space_id, monkeypatch, times=3)
    assert recompute.process_dirty(store) == 0
    store.clock.set(NOW + timedelta(seconds=29))
    assert recompute.process_dirty(store) == 0
    store.clock.set(NOW + timedelta(seconds=30))

    assert recompute.process_dirty(store) == 1
    assert members(store, twice.id) == {profile_of(store, "user_id", "ann")}
