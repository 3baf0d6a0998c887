"""A real HTTP receiver on loopback that records every request, standing in for a destination."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: object
    at: float = field(default_factory=time.monotonic)


def _by_prefix(values: dict[str, float], path: str, default: float) -> float:
    return next((value for prefix, value in values.items() if path.startswith(prefix)), default)


def _complete_json(raw: bytes, length: int) -> object | None:
    """The JSON body, or None when fewer bytes came than announced or they do not parse."""
    if length == 0 or len(raw) < length:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    """A listen backlog for bursts: with the default of 5, a burst of connections on a loaded machine
    can be reset before it is accepted, which a test would see as a failed delivery."""

    request_queue_size = 128


class Receiver:
    """Answers 200 (or the next of `failures` for a path prefix, e.g. `{"/pendula": [503]}` or
    `{"/busy": [(429, {"Retry-After": "40"})]}`) after `delay` seconds (or `delays[prefix]`), and
    keeps what it got in `received`. Under a `drip` prefix the 200's body trickles out one byte every
    `drip[prefix]` seconds. A request cut off before its whole body arrived (a sender killed
    mid-request) is not a delivery: it is dropped unrecorded."""

    def __init__(self, failures: dict[str, list] | None = None, delay: float = 0.0,
                 delays: dict[str, float] | None = None, drip: dict[str, float] | None = None):
        self.received: list[Received] = []
        self.failures = {prefix: list(codes) for prefix, codes in (failures or {}).items()}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = _complete_json(raw, length)
                if body is None:
                    self.close_connection = True
                    return
                wait = _by_prefix(delays or {}, self.path, delay)
                if wait:
                    receiver.stopping.wait(wait)
                status, headers = receiver.answer(self.path)
                if status == 200:
                    with receiver.lock:
                        receiver.received.append(
                            Received(self.command, self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                every = _by_prefix(drip or {}, self.path, 0.0)
                content = b'{"ok": "slowly"}' if every else b"{}"
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                for start in range(len(content)) if every else ():
                    if receiver.stopping.wait(every):
                        return
                    try:
                        self.wfile.write(content[start:start + 1])
                        self.wfile.flush()
                    except OSError:  # the sender gave up on the trickle
                        self.close_connection = True
                        return
                if not every:
                    self.wfile.write(content)

            do_PUT = do_PATCH = do_POST

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self.lock:
            for prefix, codes in self.failures.items():
                if path.startswith(prefix) and codes:
                    answer = codes.pop(0)
                    return answer if isinstance(answer, tuple) else (answer, {})
        return 200, {}

    def at(self, prefix: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path.startswith(prefix)]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
