"""What the Tracking API acknowledged survives SIGKILL: `serve` killed at random moments while two
clients send 50,000 events (the official segment-analytics-python library and raw HTTP), started
again each time, has in the end stored every message it answered `200` for exactly once, and a
space's messages in the order they were acknowledged."""

import random
import threading
import time

import httpx
import pytest
from segment.analytics.client import Client as Analytics

from tests.databases import database_url, fetch
from tests.servers import processed, server_with_space

PER_CLIENT = 25_000
BATCH = 100


@pytest.fixture
def server(tmp_path):
    process = server_with_space(tmp_path, "Crash")
    yield process
    process.stop()


def send_raw(server, acknowledged: list[int], stop_at: float) -> None:
    """Batches of tracks and one identify carrying the batch's number, each sent until it is answered
    `200` (a connection cut by the kill, or a server still starting, is tried again)."""
    with httpx.Client(base_url=server.base, auth=(server.write_key, ""), timeout=10) as http:
        for number in range(PER_CLIENT // BATCH):
            batch = [{"type": "track", "userId": f"raw-{n % 300}", "event": "Tick", "messageId": f"raw-{n}"}
                     for n in range(number * BATCH, (number + 1) * BATCH - 1)]
            batch.append({"type": "identify", "userId": "raw-order", "traits": {"batch": number},
                          "messageId": f"raw-order-{number}"})
            while time.monotonic() < stop_at:
                try:
                    if http.post("/v1/batch", json={"batch": batch}).status_code == 200:
                        acknowledged.append(number)
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)


def send_with_the_library(server, failed: set[str]) -> None:
    def on_error(error, batch):
        failed.update(message["messageId"] for message in batch)

    library = Analytics(server.write_key, host=server.base, upload_size=BATCH, max_queue_size=PER_CLIENT,
                        on_error=on_error, max_retries=8)
    for n in range(PER_CLIENT):
        library.track(f"lib-{n % 300}", "Tock", message_id=f"lib-{n}")
    library.flush()
    library.join()


def test_every_acknowledged_message_is_stored_once_and_in_order_across_sigkills(server, tmp_path):
    acknowledged, failed = [], set()
    stop_at = time.monotonic() + 240
    senders = [threading.Thread(target=send_raw, args=(server, acknowledged, stop_at)),
               threading.Thread(target=send_with_the_library, args=(server, failed))]
    for sender in senders:
        sender.start()
    chance, kills = random.Random(7), 0
    while any(sender.is_alive() for sender in senders) and kills < 5:
        time.sleep(chance.uniform(0.5, 2.0))
        server.kill()
        kills += 1
        server.start()
    for sender in senders:
        sender.join()
    processed(server, seconds=120)

    url = database_url(tmp_path, "server")
    assert kills >= 2
    assert acknowledged == list(range(PER_CLIENT // BATCH)), "every raw batch was answered 200 in the end"
    [(events, distinct)] = fetch(url, "select count(*), count(distinct message_id) from event")
    assert events == distinct, "no message is stored twice"
    raw = {message_id for (message_id,) in fetch(url, "select message_id from event where message_id like 'raw-%'")}
    assert len(raw) == PER_CLIENT
    stored = {message_id for (message_id,) in fetch(url, "select message_id from event where message_id like 'lib-%'")}
    assert {f"lib-{n}" for n in range(PER_CLIENT)} - failed <= stored
    [(last,)] = fetch(url, "select value from trait where key = 'batch'")
    assert str(last) == str(PER_CLIENT // BATCH - 1), "the last batch acknowledged is the last applied"
