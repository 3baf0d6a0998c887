"""The MCP Bundle: the manifest validates with Anthropic's `mcpb`, and the bundle `segment-audiences
bundle` packs is unpacked into an empty folder and started exactly as a host starts it (the
manifest's command, args and env, `${__dirname}` and `user_config` put in), with nothing on the
PATH's `python3` but the standard library, and lists its tools over stdio."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from mcp import Client, StdioServerParameters

from server import bundle
from tools import TOOLS

MCPB = os.environ.get("SEGMENT_AUDIENCES_MCPB")
pytestmark = [
    pytest.mark.skipif(not MCPB, reason="needs SEGMENT_AUDIENCES_MCPB (Anthropic's mcpb; .ci/run installs it)"),
    pytest.mark.skipif(bool(os.environ.get("SEGMENT_AUDIENCES_TEST_POSTGRES")),
                       reason="the bundle does not depend on the database; built once, in the SQLite run"),
]


def test_the_manifest_validates_and_names_every_tool():
    checked = subprocess.run([MCPB, "validate", str(bundle.CHECKOUT / "manifest.json")], capture_output=True, text=True)
    assert checked.returncode == 0 and "passes" in checked.stdout, checked.stdout + checked.stderr
    manifest = json.loads((bundle.CHECKOUT / "manifest.json").read_text())
    assert [tool["name"] for tool in manifest["tools"]] == [spec.name for spec in TOOLS]


def host_environment(manifest, folder, user_config):
    """The manifest's command, args and env with a host's substitutions, over a bare environment."""
    def substitute(text):
        text = text.replace("${__dirname}", str(folder))
        return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: str(user_config.get(
            m.group(1), manifest["user_config"][m.group(1)].get("default", ""))), text)

    config = manifest["server"]["mcp_config"]
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), **{k: substitute(v) for k, v in config["env"].items()}}
    return substitute(config["command"]), [substitute(a) for a in config["args"]], env


def bare_python3():
    """A `python3` on the PATH without this project's dependencies, as on a host."""
    found = shutil.which("python3")
    if found is None or subprocess.run([found, "-c", "import sqlmodel"], capture_output=True).returncode == 0:
        pytest.skip("the python3 on the PATH has the dependencies installed, so it would not test the vendoring")
    return found


@pytest.mark.anyio
async def test_the_bundle_is_packed_unpacked_and_started_as_a_host_starts_it(tmp_path):
    python3 = bare_python3()
    packed = subprocess.run([sys.executable, "-m", "server", "bundle", "--output", str(tmp_path / "sa.mcpb")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert packed.returncode == 0, packed.stderr
    installed = tmp_path / "installed"
    installed.mkdir()
    with zipfile.ZipFile(tmp_path / "sa.mcpb") as archive:
        archive.extractall(installed)
    manifest = json.loads((installed / "manifest.json").read_text())
    assert manifest["compatibility"]["runtimes"]["python"].startswith(f">={sys.version_info[0]}.{sys.version_info[1]}")
    command, args, env = host_environment(manifest, installed, {"database_url": str(tmp_path / "host.db")})
    assert shutil.which(command) == python3
    async with Client(StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp_path))) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        spaces = (await client.call_tool("segment_audiences_list_spaces", {})).structured_content["spaces"]
    assert names == [spec.name for spec in TOOLS]
    assert [space["name"] for space in spaces] == ["Default"] and (tmp_path / "host.db").exists()
