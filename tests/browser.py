"""Headless Chromium (Debian's, installed by .ci/run) driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: Chromium reads commands on its fd 3 and writes answers and events on its
fd 4, each JSON message ended by a NUL byte), so a test can load a page, read its DOM, click, and
keep a screenshot."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or ""
# The flags this machine's closed network needs: no background connections, no QUIC, no sandbox as root.
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage"]
ANSWER_SECONDS = 60.0


class Browser:
    """One Chromium with one page; `open`, `evaluate`, `click` and `screenshot` act on that page."""

    def __init__(self, profile_dir: Path, width: int = 1280, height: int = 1000):
        commands_read, self._commands = os.pipe()
        self._answers, answers_written = os.pipe()

        def as_fds_3_and_4() -> None:  # copies above 4 first, so neither is overwritten by the other
            read_copy, write_copy = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_read, answers_written))
            os.dup2(read_copy, 3)
            os.dup2(write_copy, 4)

        self.process = subprocess.Popen([CHROMIUM, *HEADLESS, f"--user-data-dir={profile_dir}",
                                         "--remote-debugging-pipe", "about:blank"],
                                        preexec_fn=as_fds_3_and_4, close_fds=False,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(answers_written)
        self._next_id, self._answered, self._events = 0, {}, []
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.command("Page.enable")
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def open(self, url: str) -> None:
        """Load `url` and wait for its load event."""
        self._awaiting_load(lambda: self.command("Page.navigate", {"url": url}))

    def click(self, selector: str) -> None:
        """Click the element (a button that submits a form) and wait for the page it leads to."""
        self._awaiting_load(lambda: self.evaluate(f"document.querySelector({json.dumps(selector)}).click()"))

    def evaluate(self, expression: str):
        found = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in found:
            raise AssertionError(found["exceptionDetails"])
        return found["result"].get("value")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        height = self.evaluate("document.documentElement.scrollHeight")
        data = self.command("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                       "clip": {"x": 0, "y": 0, "width": 1280, "height": height,
                                                                "scale": 1}})["data"]
        path.write_bytes(base64.b64decode(data))

    def command(self, method: str, params: dict | None = None) -> dict:
        return self._send(method, params, self.session)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._commands)

    def _awaiting_load(self, act) -> None:
        with self._arrived:
            seen = len(self._events)
        act()
        deadline = time.monotonic() + ANSWER_SECONDS
        with self._arrived:
            while not any(event.get("method") == "Page.loadEventFired" for event in self._events[seen:]):
                if not self._arrived.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError("the page did not finish loading")

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        with self._arrived:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + ANSWER_SECONDS
        with self._arrived:
            while ident not in self._answered:
                if not self._arrived.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"Chromium did not answer {method}")
            answer = self._answered.pop(ident)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def _read(self) -> None:
        pending = b""
        while True:
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                return
            pending += chunk
            *messages, pending = pending.split(b"\0")
            with self._arrived:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answered[message["id"]] = message
                    else:
                        self._events.append(message)
                self._arrived.notify_all()
