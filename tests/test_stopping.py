"""`serve` stops on SIGINT (Ctrl-C) and SIGTERM: within 5 s, exit status 0, no traceback, and a
delivery in flight at that moment is back in the queue, not lost and not waiting for its lease."""

import os
import signal
import subprocess
import sys
import time

import pytest

from store.catalog import spaces
from store.db.store import Store
from tests.databases import database_url
from tests.delivery_helpers import activate, audience, connect, sign_up, webhook
from tests.ingest_helpers import rows
from tests.receiver import Receiver
from tests.servers import free_port, wait_for_port


def serve(url: str, transport: str) -> subprocess.Popen:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--transport", transport, "--port", str(port)],
                               env={**os.environ, "SEGMENT_AUDIENCES_DB": url}, stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if transport != "stdio":
        wait_for_port(port, process)
    return process


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_serve_within_5_s_and_puts_the_delivery_in_flight_back_in_the_queue(tmp_path, transport, signum):
    url = database_url(tmp_path, "stopping")
    store = Store(url)
    space_id = spaces.create_space(store, "Stopping").space.id
    sign_up(store, space_id, "ann", "bob")
    members = audience(store, space_id)
    receiver = Receiver(delay=60)  # answers nothing for a minute: the deliveries are in flight
    try:
        connection = connect(store, space_id, members.id, "webhooks-actions", {})
        activate(store, space_id, members.id, connection.id, mapping=webhook(f"{receiver.url}/hook"))
        process = serve(url, transport)
        wait_until(lambda: rows(store, "select count(*) from outbox where lease_owner is not null") == [(2,)])

        signalled = time.monotonic()
        process.send_signal(signum)
        status = process.wait(timeout=30)
        took = time.monotonic() - signalled
        errors = process.stderr.read()
    finally:
        receiver.close()

    assert status == 0 and took < 5, (status, took, errors)
    assert "Traceback" not in errors and "stopped" in errors
    assert rows(store, "select state, lease_owner, attempts from outbox") == [("pending", None, 0)] * 2
    store.close()
