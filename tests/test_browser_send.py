"""A real browser (Debian's Chromium, installed by .ci/run) sends to the Tracking API from a page on
another origin, as analytics.js does: a `text/plain` body carrying the write key (no preflight), and
a JSON body with an Authorization header (preflighted). The Profile API reads both events back."""

import html
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.servers import processed, server_with_space

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or ""
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Chromium not installed (.ci/run installs it)")

# The flags this machine's closed network needs: no background connections, no QUIC, no sandbox as root.
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGE = """<!doctype html><html><body><pre id="out">waiting</pre><script>
const api = %(api)s, writeKey = %(key)s;
async function send(init) {
  try { const r = await fetch(api + "/v1/t", init); return r.status + " " + (await r.text()); }
  catch (error) { return "blocked: " + error; }
}
(async () => {
  const plain = await send({method: "POST", headers: {"Content-Type": "text/plain"},
    body: JSON.stringify({type: "track", userId: "web", event: "Plain Sent", writeKey})});
  const preflighted = await send({method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": "Basic " + btoa(writeKey + ":")},
    body: JSON.stringify({type: "track", userId: "web", event: "Json Sent"})});
  document.getElementById("out").textContent = JSON.stringify({plain, preflighted});
})();
</script></body></html>"""


class PageServer:
    """Serves one HTML page from its own origin (another port than the Tracking API's)."""

    def __init__(self, page: str):
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.http.server_address[1]}/"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def dumped_result(url: str, profile_dir) -> dict:
    """The page's result, as Chromium prints the DOM once the page's network work is done."""
    shown = subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={profile_dir}", "--virtual-time-budget=30000",
                            "--dump-dom", url], capture_output=True, text=True, timeout=120)
    start, end = shown.stdout.find('<pre id="out">'), shown.stdout.find("</pre>")
    assert start >= 0 and end > start, shown.stderr[-2000:]
    return json.loads(html.unescape(shown.stdout[start + len('<pre id="out">'):end]))


def test_a_page_on_another_origin_sends_as_analytics_js_does(tmp_path):
    server = server_with_space(tmp_path, "Browser")
    page = PageServer(PAGE % {"api": json.dumps(server.base), "key": json.dumps(server.write_key)})
    try:
        result = dumped_result(page.url, tmp_path / "chromium")
        assert result["plain"].startswith("200 "), result
        assert result["preflighted"].startswith("200 "), result
        processed(server)
        events = httpx.get(f"{server.base}/v1/spaces/{server.space_id}/collections/users/profiles/user_id:web/events",
                           auth=(server.access_token, "")).json()["data"]
        assert sorted(event["event"] for event in events) == ["Json Sent", "Plain Sent"]
    finally:
        page.stop()
        server.stop()
