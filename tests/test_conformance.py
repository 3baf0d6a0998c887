"""`@modelcontextprotocol/conformance` (0.1.16) against the streamable HTTP server: every scenario of
a capability the server declares passes. The others call the reference server's fixtures
(`test_image_content`, `test://static-text`, `test_simple_prompt`, …), which this server does not
have, or exercise what it does not declare (resource subscriptions, sampling, elicitation); they
are listed, so that a scenario a new release adds is looked at, not passed over."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.servers import HttpServer

SUITE = os.environ.get("SEGMENT_AUDIENCES_CONFORMANCE")
pytestmark = [
    pytest.mark.skipif(not SUITE, reason="needs SEGMENT_AUDIENCES_CONFORMANCE (the npm folder .ci/run installs)"),
    pytest.mark.skipif(bool(os.environ.get("SEGMENT_AUDIENCES_TEST_POSTGRES")),
                       reason="the protocol does not depend on the database; run once, in the SQLite run"),
]

DECLARED = {"server-initialize", "ping", "logging-set-level", "completion-complete", "tools-list", "tools-call-error",
            "resources-list", "prompts-list", "server-sse-multiple-streams", "dns-rebinding-protection"}
FIXTURES = {"tools-call-simple-text", "tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
            "tools-call-mixed-content", "tools-call-with-logging", "tools-call-with-progress", "resources-read-text",
            "resources-read-binary", "resources-templates-read", "prompts-get-simple", "prompts-get-with-args",
            "prompts-get-embedded-resource", "prompts-get-with-image"}
NOT_DECLARED = {"resources-subscribe", "resources-unsubscribe", "tools-call-sampling", "tools-call-elicitation",
                "elicitation-sep1034-defaults", "elicitation-sep1330-enums"}


def scenario_results(folder: Path) -> dict[str, list[dict]]:
    results = {}
    for directory in folder.iterdir():
        name = directory.name.removeprefix("server-").rsplit("-", 6)[0]
        results[name] = json.loads((directory / "checks.json").read_text())
    return results


def test_every_scenario_of_a_declared_capability_passes(tmp_path):
    server = HttpServer(tmp_path, "streamable-http", "--http-port", "off")
    node = Path(SUITE) / "node_modules" / ".bin" / "node"
    suite = Path(SUITE) / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    try:
        ran = subprocess.run([str(node), str(suite), "server", "--url", f"http://127.0.0.1:{server.port}/mcp",
                              "-o", str(tmp_path / "results")], capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    results = scenario_results(tmp_path / "results")
    assert set(results) == DECLARED | FIXTURES | NOT_DECLARED, ran.stdout[-3000:]
    failed = {name: [c.get("errorMessage") for c in checks if c["status"] == "FAILURE"]
              for name, checks in results.items() if name in DECLARED}
    assert not any(failed.values()), failed
