"""A database outage is an outage: while PostgreSQL cannot be reached the Tracking API answers 503 with
its JSON envelope and Retry-After, tools answer `unavailable`, the process logs one line when the
outage begins and one when it ends, and nothing acknowledged is lost. The outage is a TCP proxy in
front of the test cluster that stops passing connections."""

import json
import logging
import socket
import threading

import httpx
import pytest
from mcp import Client
from sqlalchemy import make_url

from server.app import build_server
from server.web import api_app
from store.catalog import spaces
from store.db.store import Store
from store.ingest.processor import process_all
from tests.databases import database_url, on_postgres
from tests.ingest_helpers import rows

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(not on_postgres(), reason="the outage is PostgreSQL's connections cut by a proxy")]


class CuttableProxy:
    """Passes TCP connections to `target` until `cut()`, which closes every open one and refuses new
    ones, until `restore()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.cut_off = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.cut_off = True
        with self.lock:
            for connection in self.open:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def behind_proxy(tmp_path):
    url = make_url(database_url(tmp_path))
    Store(url.render_as_string(hide_password=False)).close()  # migrated directly, before any outage
    proxy = CuttableProxy((url.host, url.port))
    store = Store(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield store, proxy
    proxy.close()
    store.close()


def track(user):
    return {"userId": user, "event": "Signed Up"}


async def test_ingest_answers_503_with_retry_after_while_the_database_is_unreachable_and_loses_nothing(
        behind_proxy, caplog):
    store, proxy = behind_proxy
    keys = spaces.create_space(store, "Outage")
    caplog.set_level(logging.INFO, logger="segment_audiences.database")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        before = await http.post("/v1/track", json=track("ann"), auth=(keys.write_key, ""))
        proxy.cut()
        during = [await http.post("/v1/track", json=track(f"lost{n}"), auth=(keys.write_key, "")) for n in range(3)]
        proxy.restore()
        after = await http.post("/v1/track", json=track("bob"), auth=(keys.write_key, ""))

    assert before.status_code == 200 and after.status_code == 200
    for answer in during:
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.json()["success"] is False and answer.json()["code"] == "unavailable"
    lines = [record.getMessage() for record in caplog.records if record.name == "segment_audiences.database"]
    assert len(lines) == 2 and "unreachable" in lines[0] and "reachable again, after" in lines[1]
    assert not any(record.exc_info for record in caplog.records)
    process_all(store)
    assert rows(store, "select value from identifier where type = 'user_id' order by value") == [("ann",), ("bob",)]
    assert rows(store, "select count(*) from event") == [(2,)]


async def test_tools_answer_unavailable_saying_to_retry_while_the_database_is_unreachable(behind_proxy):
    store, proxy = behind_proxy
    async with Client(build_server(store), mode="legacy") as client:
        proxy.cut()
        result = await client.call_tool("segment_audiences_list_spaces", {})
        proxy.restore()
        again = await client.call_tool("segment_audiences_list_spaces", {})

    [error] = json.loads(result.content[0].text)["errors"]
    assert result.is_error and error["type"] == "unavailable" and "Retry" in error["message"]
    assert not again.is_error
