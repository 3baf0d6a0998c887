"""A run killed half-way (SIGKILL, after membership rows were written in its transaction) leaves no
trace: no membership, no `<key>` traits, no outbox rows, no run record; the next run is whole."""

import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

from backend.clock import FrozenClock
from store.catalog import audiences, spaces
from store.compute import recompute, runs
from store.db.store import Store
from tests.conftest import NOW
from tests.databases import database_url
from tests.ingest_helpers import rows, send

RUN_UNTIL_OUTBOX = textwrap.dedent("""
    import sys, time
    from backend.clock import FrozenClock
    from datetime import datetime, timezone
    from store.delivery import outbox
    from store.compute import runs
    from store.db.store import Store

    def stall(*args, **kwargs):
        print("membership written", flush=True)
        time.sleep(60)

    outbox.enqueue = stall
    store = Store(sys.argv[1], clock=FrozenClock(datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc)))
    runs.run(store, sys.argv[2], reason="forced")
""")


def test_a_run_killed_mid_transaction_leaves_the_previous_state(tmp_path):
    url = database_url(tmp_path, "crash")
    store = Store(url, clock=FrozenClock(NOW))
    space_id = spaces.create_space(store, "Crash").space.id
    send(store, space_id, *[{"type": "track", "userId": f"u{n}", "event": "Signed Up",
                             "timestamp": (NOW - timedelta(hours=1)).isoformat()} for n in range(50)])
    audience = audiences.create_audience(store, space_id, name="Signed up", audience_type="USERS",
                                         query="event('Signed Up').count() >= 1")
    store.close()

    child = subprocess.Popen([sys.executable, "-c", RUN_UNTIL_OUTBOX, url, audience.id], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "membership written"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)

    store = Store(url, clock=FrozenClock(NOW))
    for table in ("membership", "outbox", "compute_run"):
        assert rows(store, f"select count(*) from {table}") == [(0,)], table
    assert rows(store, "select count(*) from trait where key = 'signed_up'") == [(0,)]
    assert recompute.run_due(store) == 1
    assert rows(store, "select count(*) from membership where exited_at_ms is null") == [(50,)]
    assert runs.states(store, [audience.id])[audience.id].size == 50
    store.close()
