"""The console in headless Chromium: every page loads and shows the numbers the tools return, the
redrive button puts dead letters back, and a screenshot of each page is kept (artifacts/console/, or
under SEGMENT_AUDIENCES_ARTIFACTS). Who may open it: a loopback host name, or the token."""

import os
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from server.web import api_app
from store.catalog import audiences
from store.compute import runs
from tests.browser import CHROMIUM, Browser
from tests.conftest import NOW
from tests.delivery_helpers import activate, audience, connect, deliver, sign_up, webhook
from tests.receiver import Receiver
from tests.servers import free_port, server_with_space

pytestmark = pytest.mark.anyio
ARTIFACTS = Path(os.environ.get("SEGMENT_AUDIENCES_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "console"
needs_chromium = pytest.mark.skipif(not CHROMIUM, reason="Chromium not installed (.ci/run installs it)")


class ConsoleServer:
    """The APIs and the console of `store` on a loopback port, in a thread, until `stop`."""

    def __init__(self, store, token=None):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(api_app(store, token), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "the console's server did not start"
            threading.Event().wait(0.02)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def receiver():
    receiver = Receiver(failures={"/hook": [400] * 10})
    yield receiver
    receiver.close()


@pytest.fixture
async def space(store, space_id, receiver):
    """Two audiences with a few days of history, and a webhook that refuses every delivery."""
    store.clock.set(NOW - timedelta(days=3))
    sign_up(store, space_id, "ann", "bob")
    signed_up = audience(store, space_id)
    store.clock.set(NOW - timedelta(days=1))
    sign_up(store, space_id, "cy")
    runs.run(store, signed_up.id, reason="forced")
    store.clock.set(NOW)
    named_ann = audiences.create_audience(store, space_id, name="Ann", audience_type="USERS",
                                          query="event('Signed Up').count() >= 1 AND trait('email') = 'ann@example.com'")
    runs.run(store, named_ann.id, reason="initial")
    connection = connect(store, space_id, signed_up.id, "webhooks-actions", {})
    activate(store, space_id, signed_up.id, connection.id, mapping=webhook(f"{receiver.url}/hook"))
    await deliver(store)
    return signed_up, named_ann, connection


@pytest.fixture
def console(store):
    server = ConsoleServer(store)
    yield server
    server.stop()


@pytest.fixture
def browser(tmp_path):
    browser = Browser(tmp_path / "chromium")
    yield browser
    browser.close()


def values(browser, chart: str, series: str) -> list[float]:
    return browser.evaluate(f"[...document.querySelectorAll('#{chart} g[data-series=\"{series}\"] circle')]"
                            ".map(c => Number(c.dataset.value))")


def texts(browser, selector: str) -> list[str]:
    return browser.evaluate(f"[...document.querySelectorAll({selector!r})].map(e => e.textContent.trim())")


@needs_chromium
async def test_every_page_shows_what_the_tools_return(store, space_id, call, space, console, browser):
    signed_up, named_ann, connection = space
    pages = {
        "spaces": "/console",
        "space": f"/console/spaces/{space_id}",
        "audience": f"/console/spaces/{space_id}/computations/{signed_up.id}",
        "destination": f"/console/spaces/{space_id}/destinations/{connection.destination_id}",
        "overlap": f"/console/spaces/{space_id}/overlap?ids={signed_up.id}&ids={named_ann.id}",
        "backtest": f"/console/spaces/{space_id}/backtest?audienceType=USERS&days=4&query="
                    + "event('Signed Up').count() >= 1".replace(" ", "%20"),
    }
    shown = {}
    for name, path in pages.items():
        browser.open(console.base + path)
        browser.screenshot(ARTIFACTS / f"{name}.png")
        shown[name] = browser.evaluate("document.title")
        assert "Not shown" not in shown[name], (name, browser.evaluate("document.body.innerText"))
        if name == "space":
            assert texts(browser, "#audiences td.size") == ["3", "1"]
            assert texts(browser, "#destinations td.dead") == ["3"]
        if name == "audience":
            history = (await call.ok("get_audience_size_history", spaceId=space_id, id=signed_up.id,
                                     startTime=(NOW - timedelta(days=30)).isoformat(), endTime=NOW.isoformat(),
                                     granularity="DAY"))["sizeHistory"]
            assert values(browser, "size-history", "size") == [b["size"] for b in history["buckets"]]
            assert values(browser, "size-history", "size")[-4:] == [2, 2, 3, 3]
            assert "SELECT" in browser.evaluate("document.getElementById('explain').textContent").upper()
        if name == "destination":
            [listed] = (await call.ok("list_destinations_from_audience", spaceId=space_id,
                                      audienceId=signed_up.id))["connections"]
            assert texts(browser, "#health td.dead") == [str(listed["delivery"]["deadLettered"])]
            assert sum(values(browser, "delivery-history", "dead-lettered")) == 3
        if name == "overlap":
            found = (await call.ok("get_audience_overlap", spaceId=space_id,
                                   audienceIds=[signed_up.id, named_ann.id]))["overlap"]
            assert texts(browser, "#matrix td") == [str(found["audiences"][0]["size"]), str(found["pairs"][0]["intersection"]),
                                                   str(found["pairs"][0]["intersection"]), str(found["audiences"][1]["size"])]
        if name == "backtest":
            found = (await call.ok("backtest_audience", spaceId=space_id, audienceType="USERS",
                                   definition={"query": "event('Signed Up').count() >= 1"},
                                   startTime=(NOW - timedelta(days=3)).isoformat(), endTime=NOW.isoformat()))["backtest"]
            assert values(browser, "backtest-chart", "size") == [day["size"] for day in found["days"]]
    assert all((ARTIFACTS / f"{name}.png").stat().st_size > 1_000 for name in pages)


@needs_chromium
async def test_the_redrive_button_puts_the_dead_letters_back_in_the_queue(store, space_id, space, console, browser):
    _, _, connection = space
    browser.open(f"{console.base}/console/spaces/{space_id}/destinations/{connection.destination_id}")
    assert texts(browser, "#health td.dead") == ["3"]

    browser.click("#redrive")

    assert texts(browser, "#redriven") == ["3 dead letters put back in the queue."]
    assert texts(browser, "#health td.dead") == ["0"] and texts(browser, "#health td.pending") == ["3"]
    browser.screenshot(ARTIFACTS / "destination-redriven.png")


def test_the_console_asks_for_the_token_when_one_is_set(store, space_id):
    server = ConsoleServer(store, token="s3cret")
    try:
        refused = httpx.get(f"{server.base}/console")
        bearer = httpx.get(f"{server.base}/console", headers={"Authorization": "Bearer s3cret"})
        with httpx.Client(base_url=server.base) as browser_like:
            first = browser_like.get("/console?token=s3cret")
            after = browser_like.get("/console")
    finally:
        server.stop()
    assert (refused.status_code, bearer.status_code) == (401, 200)
    assert first.status_code == 303 and after.status_code == 200 and "Test Space" in after.text


def test_without_a_token_the_console_answers_only_loopback_host_names(store, space_id):
    server = ConsoleServer(store)
    try:
        rebound = httpx.get(f"{server.base}/console", headers={"Host": "attacker.example"})
        cross_site = httpx.post(f"{server.base}/console/spaces/{space_id}/destinations/dst_x/redrive",
                                headers={"Origin": "http://attacker.example"})
    finally:
        server.stop()
    assert (rebound.status_code, cross_site.status_code) == (403, 403)


def test_serve_offers_the_console_beside_the_apis(tmp_path):
    server = server_with_space(tmp_path, "Consoled")
    try:
        page = httpx.get(f"{server.base}/console", timeout=30)
    finally:
        server.stop()
    assert page.status_code == 200 and "Consoled" in page.text
