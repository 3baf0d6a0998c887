"""The durable log between the Tracking API's answer and the stored events: a `200` means the request
is kept; the processor stores each request once, in order per space, spaces taking turns; the
Profile API says how far it has got."""

import json
import threading

import httpx
import pytest
from sqlalchemy import text

from backend.tracking.messages import MAX_MESSAGE_BYTES
from server.web import api_app
from store.catalog import spaces
from store.ingest import ingest, log, processor
from store.ingest.processor import process_all, process_waiting
from tests.ingest_helpers import rows, send

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(store):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as client:
        yield client


async def post(http, keys, *messages):
    response = await http.post("/v1/batch", json={"batch": list(messages)}, auth=(keys.write_key, ""))
    assert response.json() == {"success": True}


def logged(store):
    """The requests in the log (a file of its own beside SQLite, a table of the database on PostgreSQL)."""
    with store.log_engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("select kind, messages from ingest_log order by id"))]


def track(user, event, **properties):
    return {"type": "track", "userId": user, "event": event, "properties": properties}


async def test_an_acknowledged_request_is_kept_in_the_log_until_the_processor_stores_it(http, store):
    keys = spaces.create_space(store, "Shop")
    await post(http, keys, track("ada", "Viewed"), track("ada", "Bought"))

    assert logged(store) == [("batch", 2)]
    assert rows(store, "select count(*) from event") == [(0,)]

    process_all(store)

    assert rows(store, "select event from event order by id") == [("Viewed",), ("Bought",)]
    assert logged(store) == []
    process_all(store)
    assert rows(store, "select count(*) from event") == [(2,)]


async def test_a_request_s_refused_messages_are_refused_again_when_it_is_stored(http, store):
    """The processor checks the shapes of a logged request's messages again only when some were refused
    (the log counts the accepted ones): a NUL character or too large a message is refused again."""
    keys = spaces.create_space(store, "Shop")
    response = await http.post("/v1/batch", auth=(keys.write_key, ""), json={"batch": [
        track("ada", "Viewed"), track("ada", "Bad\x00Name"), track("ada", "Big", text="x" * MAX_MESSAGE_BYTES),
        track("ada", "Bought")]})
    assert response.status_code == 400 and response.json()["accepted"] == 2

    assert logged(store) == [("batch", 2)]
    process_all(store)

    assert rows(store, "select event from event order by id") == [("Viewed",), ("Bought",)]


async def test_a_space_s_requests_are_stored_in_the_order_they_were_acknowledged(http, store):
    keys = spaces.create_space(store, "Shop")
    for plan in ("free", "pro", "team"):
        await post(http, keys, {"type": "identify", "userId": "ada", "traits": {"plan": plan}})

    processor.process_waiting(store, turn_messages=1)  # one request per turn
    process_all(store)

    assert rows(store, "select value from trait where key = 'plan'") == [('"team"',)]


async def test_a_message_stored_at_once_comes_after_what_the_log_still_holds(http, store):
    keys = spaces.create_space(store, "Shop")
    await post(http, keys, {"type": "identify", "userId": "ada", "traits": {"plan": "free"}})

    send(store, keys.space.id, {"type": "identify", "userId": "ada", "traits": {"plan": "pro"}})

    assert rows(store, "select value from trait where key = 'plan'") == [('"pro"',)]
    assert logged(store) == []


async def test_a_failed_turn_leaves_its_requests_in_the_log_and_a_later_one_stores_them_once(http, store, monkeypatch):
    keys = spaces.create_space(store, "Shop")
    await post(http, keys, track("ada", "Viewed"))
    real_store = ingest._store

    def failing(*args):
        real_store(*args)
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr(ingest, "_store", failing)
    with pytest.raises(RuntimeError):
        process_all(store)
    assert rows(store, "select count(*) from event") == [(0,)]
    assert log.backlog(store, keys.space.id).messages == 1

    monkeypatch.setattr(ingest, "_store", real_store)
    process_all(store)
    assert rows(store, "select event from event") == [("Viewed",)]


async def test_spaces_take_turns_so_a_busy_space_holds_up_no_other(http, store):
    busy, quiet = spaces.create_space(store, "Busy"), spaces.create_space(store, "Quiet")
    for start in range(0, 40, 10):
        await post(http, busy, *(track(f"user-{n}", "Viewed") for n in range(start, start + 10)))
    await post(http, quiet, track("ada", "Viewed"))

    process_waiting(store, turn_messages=10)

    assert rows(store, "select space_id, count(*) from event group by space_id order by space_id") == sorted(
        [(busy.space.id, 10), (quiet.space.id, 1)])


async def test_the_profile_api_says_how_many_messages_wait_to_be_stored(http, store):
    keys = spaces.create_space(store, "Shop")
    await post(http, keys, track("ada", "Viewed"), track("ada", "Bought"))
    url = f"/v1/spaces/{keys.space.id}/collections/users/profiles/user_id:ada/traits"

    waiting = await http.get(url, auth=(keys.access_token, ""))
    assert waiting.status_code == 404
    assert (waiting.headers["x-ingest-backlog"], waiting.headers["x-ingest-lag-ms"]) == ("2", "0")

    process_all(store)
    answered = await http.get(url, auth=(keys.access_token, ""))
    assert answered.status_code == 200 and answered.headers["x-ingest-backlog"] == "0"


async def test_two_processors_store_every_request_once_and_in_order(http, two_servers):
    first, second = two_servers
    shops = [spaces.create_space(first, f"Shop {n}") for n in range(3)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(first)), base_url="http://t") as client:
        for round_ in range(20):
            for keys in shops:
                await post(client, keys, {"type": "identify", "userId": "ada", "traits": {"round": round_}},
                           track("ada", "Tick", round=round_))

    workers = [threading.Thread(target=process_all, args=(store,)) for store in (first, second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    process_all(first)

    assert rows(first, "select space_id, count(*) from event where event = 'Tick' group by space_id order by space_id") == sorted(
        (keys.space.id, 20) for keys in shops)
    assert rows(first, "select value from trait where key = 'round'") == [("19",)] * 3
    assert logged(first) == []


def test_acknowledging_does_not_wait_for_the_database_s_single_writer(store):
    if not store.log_apart:
        pytest.skip("on PostgreSQL writers do not wait for one another")
    keys = spaces.create_space(store, "Shop")
    holding, release, answers = threading.Event(), threading.Event(), []

    def long_write():
        with store.write():
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert holding.wait(5)
    body = {"userId": "ada", "event": "Viewed"}
    acknowledging = threading.Thread(target=lambda: answers.append(
        ingest.acknowledge(store, keys.space.id, "track", json.dumps(body).encode(), body, "tests")))
    acknowledging.start()
    acknowledging.join(5)
    release.set()
    writer.join()

    assert answers == [(1, [])], "the request was logged while the database's writer was busy"
