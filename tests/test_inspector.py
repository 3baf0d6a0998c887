"""The MCP Inspector CLI (installed by .ci/run) lists and calls our tools over stdio."""

import json
import os
import subprocess
import sys

import pytest

from tests.databases import database_url

INSPECTOR = os.environ.get("MCP_INSPECTOR_BIN", "")
pytestmark = pytest.mark.skipif(not os.path.exists(INSPECTOR), reason="MCP_INSPECTOR_BIN not installed (.ci/run installs it)")


def inspector(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"),
           "MCP_CLIENT_CONFIG_PATH": str(tmp_path / "clients.json")}
    command = [INSPECTOR, "--cli", "--format", "json", "-q",
               "-e", f"SEGMENT_AUDIENCES_DB={database_url(tmp_path, 'inspector')}",
               sys.executable, "-m", "server", "serve", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_inspector_lists_the_tools(tmp_path):
    result = inspector(tmp_path, "--method", "tools/list")
    assert result.returncode == 0, result.stderr
    names = {tool["name"] for tool in json.loads(result.stdout)["result"]["tools"]}
    assert len(names) == 71 and "segment_audiences_create_audience" in names


def test_inspector_calls_a_tool(tmp_path):
    result = inspector(tmp_path, "--method", "tools/call", "--tool-name", "segment_audiences_list_spaces")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"]["structuredContent"]["spaces"][0]["name"] == "Default"


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--tool-name", "segment_audiences_get_space", "--tool-arg", "spaceId=spa_nope"],
     {"type": "not-found", "field": "spaceId"}),
    (["--tool-name", "segment_audiences_create_audience_preview", "--tool-arg", "spaceId=spa_nope",
      "audienceType=USERS", 'definition={"query": "event(\'x\').count() >="}'],
     {"type": "input-validation", "field": "definition.query"}),
    (["--tool-name", "segment_audiences_get_space"], {"type": "input-validation", "field": "spaceId"}),
], ids=["unknown id", "invalid CQL", "missing argument"])
def test_inspector_shows_a_tool_error_and_exits_5(tmp_path, arguments, expected):
    failed = inspector(tmp_path, "--method", "tools/call", *arguments)
    assert failed.returncode == 5, failed.stderr
    result = json.loads(failed.stdout)["result"]
    assert result["isError"] is True and "structuredContent" not in result
    [error] = json.loads(result["content"][0]["text"])["errors"]
    assert {key: error[key] for key in expected} == expected and error["message"]
