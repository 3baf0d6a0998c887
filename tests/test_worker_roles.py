"""Roles split across processes: `worker --only` runs just the loops it names, and `serve` and `worker`
store the log from a processor process and send from a delivery process of their own, which `serve`
starts again when they die."""

import os
import re
import signal
import subprocess
import sys

import httpx
import orjson
import pytest

from server.cli import main
from server.role_process import YIELDING
from server.worker import Worker
from store.catalog import spaces
from store.db.store import Store
from store.ingest import log
from store.ingest.ingest import acknowledge
from tests.databases import database_url
from tests.delivery_helpers import activate, audience, connect, sign_up, wait_until, webhook
from tests.ingest_helpers import rows
from tests.receiver import Receiver
from tests.servers import HttpServer, processed, server_with_space

MEMBERS = 300
CHILD = re.compile(r"delivery runs in a child process \(pid (\d+)\)")
PROCESSOR = re.compile(r"ingest runs in a child process \(pid (\d+)\)")


def members_waiting_for_a_webhook(store, url: str, users: int) -> str:
    """A space whose audience has `users` members, each with an Audience Entered row for `url` in the outbox."""
    space_id = spaces.create_space(store, "Roles").space.id
    sign_up(store, space_id, *[f"user-{n:03}" for n in range(users)])
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id, mapping=webhook(url))
    return space_id


def test_a_worker_with_only_the_ingest_role_stores_the_log_and_sends_nothing(store):
    space_id = members_waiting_for_a_webhook(store, "http://127.0.0.1:9/hook", 3)
    batch = {"batch": [{"type": "track", "userId": "late", "event": "Signed Up"}]}
    acknowledge(store, space_id, "batch", orjson.dumps(batch), batch, "tests")
    [(dirty,)] = rows(store, "select count(*) from dirty_profile")

    worker = Worker(store, roles=("ingest",)).start()
    try:
        wait_until(lambda: log.backlog(store, space_id).messages == 0)
    finally:
        worker.stop()

    assert rows(store, "select count(*) from event where profile_id in "
                       "(select profile_id from identifier where value = 'late')") == [(1,)]
    assert rows(store, "select state, count(*) from outbox group by state") == [("pending", 3)]
    assert rows(store, "select count(*) from dirty_profile") == [(dirty + 1,)], "no realtime pass ran"


def test_worker_only_refuses_a_role_it_does_not_know(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--only", "ingest,sending"])
    assert exit_.value.code == 2
    assert "roles are ingest, compute, delivery" in capsys.readouterr().err


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too: it only waits to be reaped
        return stat.read().split(") ")[1].startswith("Z")


def test_serve_sends_from_a_child_process_and_starts_it_again_after_a_sigkill(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENT_AUDIENCES_LEASE_SECONDS", "6")
    receiver = Receiver(delay=0.01)
    store = Store(database_url(tmp_path, "server"))
    try:
        members_waiting_for_a_webhook(store, f"{receiver.url}/hook", MEMBERS)
        server = HttpServer(tmp_path, "streamable-http")
        try:
            wait_until(lambda: len(receiver.received) >= MEMBERS // 3)
            [first] = CHILD.findall(server.log.read_text())
            os.kill(int(first), signal.SIGKILL)
            wait_until(lambda: rows(store, "select count(*) from outbox where state = 'delivered'") == [(MEMBERS,)])
            children = CHILD.findall(server.log.read_text())
            assert server.process.poll() is None, "serve itself went on"
            server.kill()
            wait_until(lambda: gone(int(children[-1])), seconds=30)  # it does not outlive serve
        finally:
            server.stop()
        expected = {message_id for (message_id,) in rows(store, "select message_id from outbox")}
    finally:
        receiver.close()
        store.close()

    assert len(children) == 2 and children[0] == first and children[1] != first
    assert {item.body["messageId"] for item in receiver.received} == expected


def test_serve_stores_from_a_processor_process_of_lower_priority_and_one_killed_is_replaced_with_nothing_lost_or_doubled(
        tmp_path):
    server = server_with_space(tmp_path, "Roles")
    store = Store(server.environment["SEGMENT_AUDIENCES_DB"])
    try:
        with httpx.Client(base_url=server.base, auth=(server.write_key, ""), timeout=30) as client:
            for batch in range(40):
                if batch == 10:
                    wait_until(lambda: PROCESSOR.findall(server.log.read_text()))
                    os.kill(int(PROCESSOR.findall(server.log.read_text())[0]), signal.SIGKILL)
                messages = [{"type": "track", "userId": f"user-{n % 7}", "event": "Viewed", "messageId": f"m-{batch}-{n}"}
                            for n in range(50)]
                assert client.post("/v1/batch", json={"batch": messages}).status_code == 200
        processed(server, seconds=60)
        processors = PROCESSOR.findall(server.log.read_text())
        assert server.process.poll() is None, "serve itself went on"
        niceness = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in (server.process.pid, int(processors[-1]))}
    finally:
        server.stop()
    stored = rows(store, "select count(*), count(distinct message_id) from event")
    store.close()

    assert len(processors) == 2 and processors[0] != processors[1]
    assert stored == [(2000, 2000)]
    assert niceness[int(processors[-1])] == min(niceness[server.process.pid] + YIELDING["ingest"], 19)


def test_a_worker_with_every_role_sends_from_a_child_process_and_stops_it_when_it_stops(tmp_path):
    receiver = Receiver()
    store = Store(database_url(tmp_path, "worker"))
    log_file = tmp_path / "worker.log"
    try:
        members_waiting_for_a_webhook(store, f"{receiver.url}/hook", 20)
        worker = subprocess.Popen([sys.executable, "-m", "server", "worker"], stdout=subprocess.DEVNULL,
                                  stderr=log_file.open("w"), env={**os.environ, "SEGMENT_AUDIENCES_DB": store.url})
        try:
            wait_until(lambda: rows(store, "select count(*) from outbox where state = 'delivered'") == [(20,)])
            [child] = CHILD.findall(log_file.read_text())
            assert int(child) != worker.pid
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        wait_until(lambda: gone(int(child)), seconds=30)
    finally:
        receiver.close()
        store.close()
    assert len(receiver.received) == 20
