"""Segment's own Node.js library, @segment/analytics-node (installed by .ci/run), sends identify,
track, page, group and alias in batches to the real server; the Profile API reads them back."""

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import processed, server_with_space

MODULES = os.environ.get("ANALYTICS_NODE_MODULES", "")
pytestmark = pytest.mark.skipif(not os.path.isdir(MODULES), reason="ANALYTICS_NODE_MODULES not set (.ci/run sets it)")
SCRIPT = Path(__file__).with_name("analytics_node_send.cjs")


def test_analytics_node_sends_every_call_type_in_batches(tmp_path):
    server = server_with_space(tmp_path, "Node")
    try:
        sent = subprocess.run(["node", str(SCRIPT), server.base, server.write_key], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "NODE_PATH": MODULES})
        assert sent.returncode == 0, sent.stderr
        processed(server)

        def profile_api(path: str, **params) -> dict:
            answer = httpx.get(f"{server.base}/v1/spaces/{server.space_id}/collections/{path}", params=params,
                               auth=(server.access_token, ""))
            assert answer.status_code == 200, answer.text
            return answer.json()

        traits = profile_api("users/profiles/user_id:nod/traits")["traits"]
        assert traits == {"email": "nod@example.com", "plan": "pro"}
        ids = {(i["type"], i["id"]) for i in profile_api("users/profiles/user_id:nod/external_ids")["data"]}
        assert {("user_id", "nod"), ("anonymous_id", "anon-n"), ("email", "nod@example.com")} <= ids
        events = profile_api("users/profiles/user_id:nod/events", limit=100)["data"]
        assert sorted((e["type"], e["event"] or "") for e in events) == sorted([
            ("identify", ""), ("track", "Order Completed"), ("page", "Page Viewed"), ("group", ""), ("alias", "")])
        [page] = [e for e in events if e["type"] == "page"]
        assert page["properties"]["path"] == "/install" and page["properties"]["name"] == "Install"
        assert profile_api("accounts/profiles/group_id:acme/traits")["traits"] == {"name": "Acme Inc"}
    finally:
        server.stop()
