"""The real server process fed by Segment's own Python library, read back through the Profile API;
parallel senders; and an import killed half-way."""

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from segment.analytics.client import Client as Analytics
from segment.analytics.request import APIError
from sqlalchemy.exc import OperationalError

from tests.databases import database_url, fetch
from tests.servers import SPACE_CREATED, free_port, processed, server_env, server_with_space, wait_for_port



@pytest.fixture
def server(tmp_path):
    process = server_with_space(tmp_path, "End To End")
    yield process
    process.stop()


def analytics(server, errors, **options):
    return Analytics(server.write_key, host=server.base, on_error=lambda error, batch: errors.append(error),
                     max_retries=2, **options)


def profile_api(server, path, **params):
    url = f"{server.base}/v1/spaces/{server.space_id}/collections/{path}"
    response = httpx.get(url, params=params, auth=(server.access_token, ""))
    return response.status_code, response.json()


@pytest.mark.parametrize("gzip", [True, False])
def test_segment_analytics_python_feeds_profiles_read_through_the_profile_api(server, gzip):
    errors = []
    client = analytics(server, errors, gzip=gzip, upload_size=3)
    client.identify("ada", {"email": "ada@example.com", "plan": "pro"}, anonymous_id="anon-1")
    client.track("ada", "Order Completed", {"revenue": 42.5})
    client.page("ada", category="Docs", name="Install", properties={"path": "/install"})
    client.screen("ada", name="Settings")
    client.group("ada", "acme", {"name": "Acme Inc", "employees": 120})
    client.alias("anon-2", "ada")
    client.track(anonymous_id="anon-1", event="Came Back")
    client.identify("ada", {"plan": None, "company": "Acme"})
    client.flush()
    client.join()
    assert errors == []
    processed(server)

    status, traits = profile_api(server, "users/profiles/user_id:ada/traits")
    assert status == 200
    assert traits["traits"] == {"company": "Acme", "email": "ada@example.com"}
    assert traits["cursor"]["has_more"] is False

    _, ids = profile_api(server, "users/profiles/email:ada@example.com/external_ids")
    assert {(i["type"], i["id"]) for i in ids["data"]} == {
        ("user_id", "ada"), ("anonymous_id", "anon-1"), ("email", "ada@example.com")}

    _, events = profile_api(server, "users/profiles/anonymous_id:anon-1/events", limit=100, sort="asc")
    # clock-skew correction may reorder calls made milliseconds apart, so compare without order
    names = sorted((e["type"], e["event"] or "") for e in events["data"])
    assert names == sorted([("identify", ""), ("track", "Order Completed"), ("page", "Page Viewed"), ("screen", "Screen Viewed"),
                            ("group", ""), ("alias", ""), ("track", "Came Back"), ("identify", "")])
    times = [e["timestamp"] for e in events["data"]]
    assert times == sorted(times)
    [page] = [e for e in events["data"] if e["type"] == "page"]
    assert page["properties"] == {"path": "/install", "name": "Install", "category": "Docs"}
    assert {e["related"]["users"] for e in events["data"]} == {events["data"][0]["related"]["users"]}

    _, links = profile_api(server, "users/profiles/user_id:ada/links")
    assert links["data"][0]["to_collection"] == "accounts"
    assert links["data"][0]["external_ids"][0]["id"] == "acme"
    _, account = profile_api(server, "accounts/profiles/group_id:acme/traits")
    assert account["traits"] == {"name": "Acme Inc", "employees": 120}
    _, members = profile_api(server, "accounts/profiles/group_id:acme/links")
    assert members["data"][0]["to_collection"] == "users"
    assert ("user_id", "ada") in {(i["type"], i["id"]) for i in members["data"][0]["external_ids"]}

    status, metadata = profile_api(server, "users/profiles/user_id:ada/metadata")
    assert status == 200 and metadata["metadata"]["first_source_id"] == "tracking-api"


def test_segment_analytics_python_sees_a_wrong_write_key_as_an_api_error(server):
    errors = []
    client = Analytics("not-a-write-key", host=server.base, on_error=lambda error, batch: errors.append(error),
                       max_retries=2)
    client.track("ada", "Order Completed")
    client.flush()
    client.join()
    [error] = errors
    assert isinstance(error, APIError), "the library reads code and message from the error body"
    assert (error.status, error.code) == (401, "unauthorized") and "write key" in error.message


def test_profile_api_errors_and_paging(server):
    errors = []
    client = analytics(server, errors, sync_mode=True)
    client.identify("bob", {f"t{n:02d}": n for n in range(15)})
    for n in range(5):
        client.track("bob", f"Event {n}", timestamp=None)
    assert errors == []

    old_token = server.access_token
    server.access_token = subprocess.run([sys.executable, "-m", "server", "spaces", "token", server.space_id],
                                         env=server.env, capture_output=True, text=True, check=True).stdout.strip()
    assert profile_api(server, "users/profiles/user_id:bob/metadata")[0] == 200
    server.access_token, fresh = old_token, server.access_token
    assert profile_api(server, "users/profiles/user_id:bob/metadata")[0] == 401
    server.access_token = fresh

    status, body = profile_api(server, "users/profiles/user_id:nobody/traits")
    assert (status, body) == (404, {"error": {"code": "not_found", "message": "Profile was not found."}})
    bad = httpx.get(f"{server.base}/v1/spaces/{server.space_id}/collections/users/profiles/user_id:bob/traits",
                    auth=("wrong", ""))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "authentication_error"
    status, body = profile_api(server, "users/profiles/user_id:bob/traits", limit=0)
    assert status == 400 and body["error"]["code"] == "validation_error"

    _, first = profile_api(server, "users/profiles/user_id:bob/traits")
    assert len(first["traits"]) == 10 and first["cursor"]["has_more"]
    _, second = profile_api(server, "users/profiles/user_id:bob/traits", next=first["cursor"]["next"])
    assert set(first["traits"]) | set(second["traits"]) == {f"t{n:02d}" for n in range(15)}
    assert second["cursor"]["has_more"] is False

    _, verbose = profile_api(server, "users/profiles/user_id:bob/traits", include="t01,t02", verbose="true")
    assert verbose["traits"]["t01"]["value"] == 1 and verbose["traits"]["t01"]["source_id"] == "tracking-api"
    _, computed = profile_api(server, "users/profiles/user_id:bob/traits", **{"class": "audience"})
    assert computed["traits"] == {}

    seen, cursor = [], None
    while True:
        _, page = profile_api(server, "users/profiles/user_id:bob/events", limit=2, **({"next": cursor} if cursor else {}))
        seen += [e["event"] for e in page["data"]]
        if not page["cursor"]["has_more"]:
            break
        cursor = page["cursor"]["next"]
    assert seen == [None, *(f"Event {n}" for n in range(5))][::-1]
    _, newest = profile_api(server, "users/profiles/user_id:bob/events", limit=1)
    _, metadata = profile_api(server, "users/profiles/user_id:bob/metadata")
    assert metadata["metadata"]["last_message_id"] == newest["data"][0]["message_id"]
    assert metadata["metadata"]["updated_at"] >= metadata["metadata"]["created_at"]
    _, only = profile_api(server, "users/profiles/user_id:bob/events", include="Event 3")
    assert [e["event"] for e in only["data"]] == ["Event 3"]


def test_parallel_senders_to_one_profile_lose_no_event_and_no_identifier(server, tmp_path):
    """Four clients, each first anonymous, then identified as the same user, sending 600 events each
    in small batches at the same time: one profile ends up with all 2,400 events and all identifiers."""
    errors, per_sender = [], 600

    def sender(number: int) -> None:
        client = analytics(server, errors, upload_size=25, max_queue_size=10_000)
        for n in range(per_sender):
            if n == per_sender // 2:
                client.identify("shared-user", {"sender": number}, anonymous_id=f"anon-{number}")
            else:
                client.track(anonymous_id=f"anon-{number}", event="Tick", properties={"n": n})
        client.flush()
        client.join()

    threads = [threading.Thread(target=sender, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    processed(server)

    url = database_url(tmp_path, "server")
    [(canonical,)] = fetch(url, "select profile_id from identifier where type = 'user_id' and value = 'shared-user'")
    assert fetch(url, "select count(*) from event where profile_id = :p", p=canonical) == [(4 * per_sender,)]
    assert fetch(url, "select count(*) from event") == [(4 * per_sender,)]
    ids = set(fetch(url, "select type, value from identifier where profile_id = :p", p=canonical))
    assert ids == {("user_id", "shared-user"), *(("anonymous_id", f"anon-{n}") for n in range(4))}
    assert fetch(url, "select count(*) from profile where merged_into is null") == [(1,)]


def test_an_import_killed_half_way_leaves_whole_batches_and_a_consistent_store(tmp_path):
    env = server_env(tmp_path)
    created = subprocess.run([sys.executable, "-m", "server", "spaces", "create", "Crash"], env=env,
                             capture_output=True, text=True, check=True)
    space_id = SPACE_CREATED.search(created.stdout).group(1)
    source = tmp_path / "events.jsonl"
    with source.open("w") as out:
        for n in range(40_000):
            message = {"type": "track", "userId": f"u{n % 500}", "anonymousId": f"a{n % 700}", "event": "E",
                       "messageId": f"m{n}"}
            out.write(json.dumps(message) + "\n")
    importer = subprocess.Popen([sys.executable, "-m", "server", "ingest", "--space", space_id, "--batch-size", "500",
                                 str(source)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = database_url(tmp_path, "server")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if fetch(url, "select count(*) from event")[0][0] >= 2000:
                break
        except OperationalError:
            continue
    importer.send_signal(signal.SIGKILL)
    importer.wait()

    if url.startswith("sqlite"):
        assert fetch(url, "pragma integrity_check") == [("ok",)]
    [(stored,)] = fetch(url, "select count(*) from event")
    assert 0 < stored < 40_000 and stored % 500 == 0
    assert fetch(url, "select count(*) from event where profile_id not in (select id from profile)") == [(0,)]
    assert fetch(url, "select count(*) from identifier where profile_id not in (select id from profile)") == [(0,)]
    resumed = subprocess.run([sys.executable, "-m", "server", "ingest", "--space", space_id, str(source)], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"stored {40_000 - stored}, duplicates {stored}" in resumed.stdout


def test_the_stdio_server_serves_the_tracking_api_on_its_http_port(tmp_path):
    env = server_env(tmp_path)
    created = subprocess.run([sys.executable, "-m", "server", "spaces", "create", "Stdio"], env=env,
                             capture_output=True, text=True, check=True)
    write_key = SPACE_CREATED.search(created.stdout).group(2)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--http-port", str(port)], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        response = httpx.post(f"http://127.0.0.1:{port}/v1/track", json={"userId": "u1", "event": "Over Stdio"},
                              auth=(write_key, ""))
        assert response.json() == {"success": True}
    finally:
        process.stdin.close()
        process.wait(timeout=10)
    assert fetch(database_url(tmp_path, "server"), "select event from event") == [("Over Stdio",)]
