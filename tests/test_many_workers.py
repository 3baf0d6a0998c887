"""Several `worker` processes on one database compute and deliver each thing exactly once: an initial
run, realtime sign-ups arriving while they run, a schedule firing and a resync, delivered to a real
receiver. On PostgreSQL the workers share the work through row claims and advisory locks; on SQLite
through its write lock."""

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from store.catalog import audiences, schedules, spaces
from store.db.store import Store
from tests.databases import database_url
from tests.delivery_helpers import activate, connect, sign_up, wait_until, webhook
from tests.ingest_helpers import rows
from tests.receiver import Receiver

EARLY, LATE = 60, 60  # users signed up before the workers start, and while they run


def start_workers(url: str, count: int, logs) -> list[subprocess.Popen]:
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": url}
    return [subprocess.Popen([sys.executable, "-m", "server", "worker"], env=env, stdout=subprocess.DEVNULL,
                             stderr=(logs / f"worker-{n}.log").open("w")) for n in range(count)]


def logged(logs) -> str:
    """What the workers logged, for a failure's message."""
    return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(logs.glob("worker-*.log")))


def quiet(store) -> bool:
    """Nothing left to compute or send."""
    return rows(store, "select (select count(*) from dirty_profile) + (select count(*) from outbox where state = 'pending') "
                       "+ (select count(*) from compute_state where last_run_id is null)") == [(0,)]


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_compute_and_deliver_each_thing_once(tmp_path, workers):
    url = database_url(tmp_path, f"workers{workers}")
    store = Store(url)
    receiver = Receiver()
    processes = []
    try:
        space_id = spaces.create_space(store, "Workers").space.id
        sign_up(store, space_id, *[f"early-{n}" for n in range(EARLY)])
        members = audiences.create_audience(store, space_id, name="Signed Up Users", audience_type="USERS",
                                            query="event('Signed Up').count() >= 1", options=None)
        pros = audiences.create_audience(store, space_id, name="Pros", audience_type="USERS",
                                         query="trait('plan') = 'pro'", options=None)
        entered = connect(store, space_id, members.id, "webhooks-actions", {})
        activate(store, space_id, members.id, entered.id, mapping=webhook(f"{receiver.url}/entered"))

        processes = start_workers(url, workers, tmp_path)
        wait_until(lambda: rows(store, "select count(*) from compute_state where last_run_id is not null") == [(2,)])
        sign_up(store, space_id, *[f"late-{n}" for n in range(LATE)])
        schedule = schedules.add_schedule(store, space_id, pros.id, "PERIODIC", {"interval": "1d"})
        with store.write() as session:  # as if its time had come
            session.get(type(schedule), schedule.id).next_execution = datetime.now(timezone.utc) - timedelta(minutes=1)
        wait_until(lambda: rows(store, "select count(*) from membership where computation_id = :a", a=members.id)
                   == [(EARLY + LATE,)], seconds=120)
        wait_until(lambda: rows(store, "select count(*) from compute_run where computation_id = :a and reason = 'schedule'",
                                a=pros.id) == [(1,)])
        resynced = connect(store, space_id, members.id, "webhooks-actions", {})
        activate(store, space_id, members.id, resynced.id, mapping=webhook(f"{receiver.url}/resync"), resync=True)
        wait_until(lambda: len(receiver.received) >= 2 * (EARLY + LATE) and quiet(store), seconds=180)
    except AssertionError as error:
        state = rows(store, "select computation_id, count(*) from membership group by computation_id") + rows(
            store, "select target_id, state, count(*) from outbox group by target_id, state") + rows(
            store, "select computation_id, reason, status, entered, exited from compute_run") + rows(
            store, "select count(*) from dirty_profile") + rows(store, "select audience_id, next_execution from audience_schedule")
        raise AssertionError(f"{error} ({state}; received {len(receiver.received)}); "
                             f"the workers logged:\n{logged(tmp_path)}") from None
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        receiver.close()

    by_path = Counter(item.path for item in receiver.received)
    assert by_path == {"/entered": EARLY + LATE, "/resync": EARLY + LATE}
    message_ids = [item.body["messageId"] for item in receiver.received]
    assert len(set(message_ids)) == len(message_ids), "no messageId arrived twice"
    assert rows(store, "select count(*), count(distinct profile_id) from membership where computation_id = :a "
                       "and exited_at_ms is null", a=members.id) == [(EARLY + LATE, EARLY + LATE)]
    assert rows(store, "select reason, count(*) from compute_run where computation_id = :a and reason <> 'realtime' "
                       "group by reason order by reason", a=members.id) == [("initial", 1)]
    assert rows(store, "select reason, count(*) from compute_run where computation_id = :a and reason <> 'realtime' "
                       "group by reason order by reason", a=pros.id) == [("initial", 1), ("schedule", 1)]
    store.close()
