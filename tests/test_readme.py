"""The README's quick start, run as printed: the first of its two commands starts the server, whose
first-start log gives the keys, and the two curl commands deliver an event and read it back."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="the quick start uses curl")


def commands_after(heading: str) -> list[str]:
    """The indented command lines of the README section that starts at `heading`."""
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line[4:] for line in section.splitlines() if line.startswith("    ") and not line.startswith("     ")]


def test_the_quick_start_delivers_an_event_and_reads_it_back(tmp_path):
    serve = commands_after("## Two commands")[0]
    track, read_back = commands_after("## Quick start")
    assert serve.endswith("segment-audiences serve") and track.startswith("curl") and read_back.startswith("curl")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "PIP_QUIET": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    server = subprocess.Popen(["bash", "-c", serve], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    logged: list[str] = []
    started = threading.Event()

    def read_log() -> None:
        for line in server.stderr:
            logged.append(line)
            if "MCP on stdio" in line:
                started.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        assert started.wait(300), "".join(logged)
        log = "".join(logged)
        assert "Tracking and Profile APIs on http://127.0.0.1:8000/v1/" in log, log
        space_id = re.search(r"created space Default \((spa_\w+)\)", log).group(1)
        write_key = re.search(r"write key \(Tracking API Basic user name\): (\S+)", log).group(1)
        access_token = re.search(r"access token .*: (sat_\S+)", log).group(1)

        def run(command: str) -> dict:
            filled = (command.replace("<write key>", write_key).replace("<access token>", access_token)
                      .replace("<space id>", space_id))
            done = subprocess.run(["bash", "-c", filled + " --silent --show-error"], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        assert run(track) == {"success": True}
        deadline = time.monotonic() + 30
        while "data" not in (answer := run(read_back)) and time.monotonic() < deadline:
            time.sleep(0.1)  # logged, not yet stored: the README says to send the read again
        events = answer["data"]
        assert [(event["event"], event["properties"]) for event in events] == [("Signed Up", {"plan": "pro"})]
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
