"""A delivery worker killed mid-send loses nothing: after a restart every member arrives, and the only
repeats are rows that were in flight at the kill, resent with the same messageId and body."""

import os
import signal
import subprocess
import sys
from collections import defaultdict

import orjson

from store.catalog import spaces
from store.db.store import Store
from tests.databases import database_url
from tests.delivery_helpers import activate, audience, connect, sign_up, wait_until, webhook
from tests.ingest_helpers import rows
from tests.receiver import Receiver

MEMBERS = 300
LEASE_SECONDS = "6"


def start_worker(url):
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": url, "SEGMENT_AUDIENCES_LEASE_SECONDS": LEASE_SECONDS}
    return subprocess.Popen([sys.executable, "-m", "server", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_killed_worker_loses_nothing_and_resends_only_what_was_in_flight(tmp_path):
    url = database_url(tmp_path, "crash")
    store = Store(url)
    space_id = spaces.create_space(store, "Crash").space.id
    sign_up(store, space_id, *[f"user-{n:03}" for n in range(MEMBERS)])
    members = audience(store, space_id)
    receiver = Receiver(delay=0.01)
    try:
        connection = connect(store, space_id, members.id, "webhooks-actions", {})
        activate(store, space_id, members.id, connection.id, mapping=webhook(f"{receiver.url}/hook"))
        expected = {message_id for (message_id,) in rows(store, "select message_id from outbox")}
        assert len(expected) == MEMBERS

        first = start_worker(url)
        wait_until(lambda: len(receiver.received) >= MEMBERS // 3)
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = len(receiver.received)
        assert at_kill < MEMBERS, "the worker was killed part-way"

        second = start_worker(url)
        try:
            wait_until(lambda: rows(store, "select count(*) from outbox where state = 'delivered'") == [(MEMBERS,)])
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        receiver.close()

    by_message = defaultdict(list)
    for item in receiver.received:
        by_message[item.body["messageId"]].append(orjson.dumps(item.body))
    assert set(by_message) == expected, "every member arrived"
    assert all(len(set(bodies)) == 1 for bodies in by_message.values()), "a resend is byte-for-byte the same"
    repeats = len(receiver.received) - MEMBERS
    assert repeats <= 80, "only rows in flight (32 at a time) or sent since the last record are sent again"
