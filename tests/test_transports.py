"""The real server process, over each transport, through the SDK's client."""

import subprocess
import sys

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.servers import HttpServer, server_env

pytestmark = pytest.mark.anyio


async def round_trip(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) == 71
    spaces = (await client.call_tool("segment_audiences_list_spaces", {})).structured_content["spaces"]
    assert spaces[0]["name"] == "Default"
    created = await client.call_tool("segment_audiences_create_audience", {
        "spaceId": spaces[0]["id"], "audienceType": "USERS", "name": "Round Trip",
        "definition": {"query": "event('Signed Up').count() >= 1"}})
    audience_id = created.structured_content["audience"]["id"]
    got = await client.call_tool("segment_audiences_get_audience", {"spaceId": spaces[0]["id"], "id": audience_id})
    assert got.structured_content["audience"]["key"] == "round_trip"


async def test_stdio_round_trip_and_persistence(tmp_path):
    params = StdioServerParameters(command=sys.executable, args=["-m", "server", "serve"], env=server_env(tmp_path))
    async with Client(params, mode="legacy") as client:
        await round_trip(client)
    async with Client(params) as client:
        audiences = await client.call_tool("segment_audiences_list_audiences", {
            "spaceId": (await client.call_tool("segment_audiences_list_spaces", {})).structured_content["spaces"][0]["id"]})
        assert [a["name"] for a in audiences.structured_content["audiences"]] == ["Round Trip"]


async def test_streamable_http_round_trip(tmp_path):
    server = HttpServer(tmp_path, "streamable-http")
    try:
        async with Client(f"http://127.0.0.1:{server.port}/mcp") as client:
            await round_trip(client)
    finally:
        server.stop()


async def test_sse_round_trip(tmp_path):
    server = HttpServer(tmp_path, "sse")
    try:
        async with Client(sse_client(f"http://127.0.0.1:{server.port}/sse"), mode="legacy") as client:
            await round_trip(client)
    finally:
        server.stop()


async def test_bearer_token_guards_the_http_transport(tmp_path):
    server = HttpServer(tmp_path, "streamable-http", "--token", "let-me-in")
    try:
        answer = httpx.post(f"http://127.0.0.1:{server.port}/mcp", json={})
        assert answer.status_code == 401 and answer.json()["errors"][0]["type"] == "unauthorized"
        http_client = httpx2.AsyncClient(headers={"Authorization": "Bearer let-me-in"})
        async with http_client, Client(streamable_http_client(f"http://127.0.0.1:{server.port}/mcp", http_client=http_client)) as client:
            assert len((await client.list_tools()).tools) == 71
    finally:
        server.stop()


def test_a_non_loopback_bind_without_token_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--transport", "sse", "--host", "0.0.0.0"],
        env=server_env(tmp_path), capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0 and "bearer token" in result.stderr


def test_stdio_writes_only_protocol_to_stdout(tmp_path):
    request = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    result = subprocess.run([sys.executable, "-m", "server", "serve"], input=request, env=server_env(tmp_path),
                            capture_output=True, timeout=30)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith(b'{"jsonrpc"') for line in lines)



def resident_kb(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0])


def opened_and_deleted_session(base: str) -> str:
    """A session opened and closed by hand, as the transport's spec has it; returns its id."""
    headers = {"accept": "application/json, text/event-stream"}
    opened = httpx.post(base, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
    headers["mcp-session-id"] = session_id = opened.headers["mcp-session-id"]
    assert httpx.delete(base, headers=headers).status_code == 200
    return session_id


async def test_closed_streamable_http_sessions_are_forgotten_and_free_their_memory(tmp_path):
    server = HttpServer(tmp_path, "streamable-http")
    base = f"http://127.0.0.1:{server.port}/mcp"

    async def sessions(count: int) -> None:
        for _ in range(count):
            async with Client(base) as client:
                await client.call_tool("segment_audiences_list_spaces", {})

    try:
        await sessions(20)  # warm: imports, caches, the allocator's arenas
        before = resident_kb(server.process.pid)
        await sessions(150)
        grown_kb = resident_kb(server.process.pid) - before
        closed = opened_and_deleted_session(base)
        answer = httpx.post(base, headers={"mcp-session-id": closed, "accept": "application/json, text/event-stream"},
                            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    finally:
        server.stop()

    assert answer.status_code == 404, "a session closed with DELETE must be gone"
    assert grown_kb < 150 * 420 / 4, f"150 closed sessions kept {grown_kb} KB"


async def test_streamable_http_streams_open_with_a_priming_event_and_retry_and_resume(tmp_path):
    server = HttpServer(tmp_path, "streamable-http")
    base = f"http://127.0.0.1:{server.port}/mcp"
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    try:
        opened = httpx.post(base, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        httpx.post(base, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = httpx.post(base, headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
        events = [dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in block.splitlines())
                  for block in listed.text.replace("\r\n", "\n").strip().split("\n\n")]
        replayed = ""
        with httpx.stream("GET", base, headers={**headers, "last-event-id": events[0]["id"]}, timeout=30) as resumed:
            for line in resumed.iter_lines():  # the stream stays open: read until the replayed answer
                replayed += line
                if '"id":2' in line.replace(" ", ""):
                    break
    finally:
        server.stop()
    priming, answer = events[0], events[1]
    assert priming["retry"] == "1000" and priming["data"] == "" and priming["id"]
    assert '"id":2' in answer["data"].replace(" ", "")
    assert '"id":2' in replayed.replace(" ", ""), "a reconnect with Last-Event-ID replays what followed"
