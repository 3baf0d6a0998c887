"""The real server as a subprocess on a free loopback port, for end-to-end tests."""

import os
import re
import socket
import subprocess
import sys
import time

import httpx

from tests.databases import database_url

SPACE_CREATED = re.compile(r"id:\s+(\S+).*write key:\s+(\S+).*access token:\s+(\S+)", re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp_path) -> dict[str, str]:
    """The environment of a server process, with a database of this test's own."""
    return {**os.environ, "SEGMENT_AUDIENCES_DB": database_url(tmp_path, "server")}


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20, log=None) -> None:
    """Return once something listens on the loopback port; fail if the process dies first, showing
    its stderr (a pipe, or the `log` file it writes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None, log.read_text() if log else process.stderr.read().decode()
        time.sleep(0.1)
    raise AssertionError("server did not start")


class HttpServer:
    """A `serve` process; its log goes to a file (`log`), which nothing has to read for it to go on."""

    def __init__(self, tmp_path, transport: str, *extra: str):
        self.port = free_port()
        self.log = tmp_path / f"serve-{self.port}.log"
        self.arguments = ["serve", "--transport", transport, "--port", str(self.port), *extra]
        self.environment = server_env(tmp_path)
        self.start()

    def start(self) -> None:
        """Start the process (again, on the same port, appending to the same log)."""
        with self.log.open("a") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "server", *self.arguments], env=self.environment,
                                            stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port, self.process, log=self.log)

    def kill(self) -> None:
        """SIGKILL: nothing of the process runs after it, not even its stop."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def server_with_space(tmp_path, name: str, *extra: str) -> HttpServer:
    """A streamable-HTTP server (with `extra` options) over a database holding one space made by
    `spaces create`; the server carries the space's id, write key and access token, its environment
    and its base URL."""
    created = subprocess.run([sys.executable, "-m", "server", "spaces", "create", name],
                             env=server_env(tmp_path), capture_output=True, text=True, check=True)
    space_id, write_key, access_token = SPACE_CREATED.search(created.stdout).groups()
    process = HttpServer(tmp_path, "streamable-http", *extra)
    process.space_id, process.write_key, process.access_token = space_id, write_key, access_token
    process.env = server_env(tmp_path)
    process.base = f"http://127.0.0.1:{process.port}"
    return process


def processed(server, seconds: float = 30) -> None:
    """Return once the server has stored everything its Tracking API acknowledged into the space: the
    Profile API's `X-Ingest-Backlog` reads 0 (any profile path answers it, found or not)."""
    url = f"{server.base}/v1/spaces/{server.space_id}/collections/users/profiles/user_id:-/traits"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(url, auth=(server.access_token, "")).headers.get("x-ingest-backlog") == "0":
            return
        time.sleep(0.05)
    raise AssertionError(f"the server still had messages to store after {seconds} s")
