"""The command line as a newcomer types it: global options on either side of the command, a database
given as a file path, and the HTTP APIs beside stdio (default port, any free port, off, or taken)."""

import errno
import logging
import os
import socket
import subprocess
import sys

import httpx
import pytest

from server import bundle
from server.cli import configure_logging, main


def test_global_options_go_before_or_after_the_command_and_db_takes_a_file_path(tmp_path, capsys):
    assert main(["spaces", "create", "After", "--db", str(tmp_path / "after.db")]) == 0
    assert main(["--db", str(tmp_path / "after.db"), "spaces", "list"]) == 0
    assert "After" in capsys.readouterr().out
    assert (tmp_path / "after.db").exists()


def test_the_db_environment_variable_takes_a_file_path(tmp_path):
    env = {**os.environ, "SEGMENT_AUDIENCES_DB": str(tmp_path / "env.db")}
    listed = subprocess.run([sys.executable, "-m", "server", "spaces", "list"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and "Default" in listed.stdout, listed.stderr
    assert (tmp_path / "env.db").exists()


def start_stdio(tmp_path, *arguments: str) -> tuple[subprocess.Popen, str]:
    """`serve` over stdio, and its log up to the line saying MCP is on stdio."""
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--db", str(tmp_path / "s.db"), *arguments],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    for line in process.stderr:
        log.append(line)
        if "MCP on stdio" in line:
            break
    return process, "".join(log)


def stop(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=30)


def test_first_start_shows_the_default_space_its_keys_and_the_database_as_a_block_of_its_own(tmp_path):
    process, log = start_stdio(tmp_path, "--http-port", "off")
    stop(process)
    [block] = [part for part in log.split("\n\n") if "first start" in part]
    lines = block.strip().splitlines()
    assert lines[0].startswith("first start: created space Default (spa_") and len(lines) == 4
    assert lines[1] == f"  database: {tmp_path / 's.db'}"
    assert lines[2].startswith("  write key (Tracking API Basic user name): ")
    assert lines[3].startswith("  Profile API access token") and "sat_" in lines[3]
    assert "Tracking and Profile APIs" not in log, "off means off"
    process, again = start_stdio(tmp_path, "--http-port", "off")
    stop(process)
    assert "first start" not in again


def test_http_port_zero_takes_a_free_port_and_logs_it(tmp_path):
    process, log = start_stdio(tmp_path, "--http-port", "0")
    try:
        port = int(log.split("Tracking and Profile APIs on http://127.0.0.1:")[1].split("/")[0])
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/track", json={"userId": "u", "event": "E"}, auth=("x", ""))
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
    finally:
        stop(process)


def test_mcp_still_starts_when_the_default_http_port_is_taken(tmp_path):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not refused for connections in TIME_WAIT
    try:
        holder.bind(("127.0.0.1", 8000))
        holder.listen()
    except OSError as error:
        assert error.errno == errno.EADDRINUSE  # taken already, which is the case under test
    try:
        process, log = start_stdio(tmp_path)
        assert process.poll() is None
        stop(process)
    finally:
        holder.close()
    assert "Tracking and Profile APIs are off: 127.0.0.1:8000 is not available" in log
    assert "--http-port" in log


def test_an_explicit_http_port_that_is_taken_is_an_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "server", "serve", "--db", str(tmp_path / "t.db"),
                               "--http-port", str(port)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2 and f"cannot serve the Tracking and Profile APIs on 127.0.0.1:{port}" in done.stderr


def test_a_command_on_a_migrated_database_prints_no_migration_lines(tmp_path):
    command = [sys.executable, "-m", "server", "--db", str(tmp_path / "m.db"), "spaces", "list"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "Running upgrade" in first.stderr, "the first command migrates the new database"
    assert again.returncode == 0 and again.stderr == ""


def test_help_is_whole_sentences():
    helped = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True, timeout=60)
    description = helped.stdout.split("\n\n")[1]
    assert description.rstrip().endswith("Data Graph.") and "serve the MCP server" in description


def test_bundle_outside_a_checkout_says_to_run_it_in_one(tmp_path):
    with pytest.raises(bundle.BundleError, match="run the command in one"):
        bundle.build(tmp_path / "x.mcpb", checkout=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_servers_records_are_logged_but_not_a_line_per_http_request(caplog):
    caplog.set_level(logging.INFO)
    clients = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [client.level for client in clients]
    try:
        for client in clients:
            client.setLevel(logging.NOTSET)
        configure_logging()
        assert logging.getLogger("segment_audiences.worker").isEnabledFor(logging.INFO)
        assert not any(client.isEnabledFor(logging.INFO) for client in clients), \
            "a request line per delivery costs the sending CPU, and its URL may hold a secret"
    finally:
        for client, level in zip(clients, levels):
            client.setLevel(level)
