"""MCP logging: `logging/setLevel`, and the server's own log records sent to the sessions that asked.

A session that calls `logging/setLevel` receives, as `notifications/message`, every record of the
`segment_audiences` loggers at or above its level (they record from info up), whichever thread
wrote it: runs (info: completed; warning: failed), dead-lettered deliveries (error), and calls the
Tracking API or a write tool refused (warning). The data is the record's message and the logger its name; tracebacks are not
sent, and the messages carry no secrets (delivery errors are masked before they are logged, write
keys never are). This is the handshake-era capability (protocol 2025-11-25 and before): the
2026-07-28 revision removed `logging/setLevel`, and the SDK sends such sessions no
connection-scoped log messages. One subscription per client connection; a later setLevel changes
its level, and a connection that can no longer be reached is dropped at its next message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import EmptyResult, SetLevelRequestParams

LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
ROOT_LOGGER = "segment_audiences"


@dataclass
class _Subscriber:
    session: Any
    loop: asyncio.AbstractEventLoop
    rank: int


class LogRelay(logging.Handler):
    """A logging handler that forwards records to the MCP sessions that set a level."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._subscribers: dict[int, _Subscriber] = {}
        self._guard = threading.Lock()

    def subscribe(self, key: object, session: Any, level: str) -> None:
        with self._guard:
            self._subscribers[id(key)] = _Subscriber(session, asyncio.get_running_loop(), LEVELS.index(level))

    def emit(self, record: logging.LogRecord) -> None:
        level = mcp_level(record.levelno)
        with self._guard:
            due = [(key, s) for key, s in self._subscribers.items() if LEVELS.index(level) >= s.rank]
        if not due:
            return
        data = {"message": record.getMessage()}
        for key, subscriber in due:
            if subscriber.loop.is_closed():
                self._drop(key)
                continue
            sending = _send(subscriber.session, level, data, record.name)
            try:
                future = asyncio.run_coroutine_threadsafe(sending, subscriber.loop)
            except RuntimeError:  # its event loop closed meanwhile
                sending.close()
                self._drop(key)
                continue
            future.add_done_callback(lambda done, key=key: self._drop(key)
                                     if done.cancelled() or done.exception() else None)

    def _drop(self, key: int) -> None:
        with self._guard:
            self._subscribers.pop(key, None)


async def _send(session: Any, level: str, data: dict, logger: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)  # handshake-era logging, on purpose
        await session.send_log_message(level, data, logger=logger)


def mcp_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


RELAY = LogRelay()


def install(server: Server) -> None:
    """Answer `logging/setLevel` on `server` (which then declares the logging capability), and
    attach the relay to the `segment_audiences` loggers once per process."""
    root = logging.getLogger(ROOT_LOGGER)
    if RELAY not in root.handlers:
        root.addHandler(RELAY)
    if root.getEffectiveLevel() > logging.INFO:  # records below the loggers' level are never made
        root.setLevel(logging.INFO)

    async def set_level(ctx, params: SetLevelRequestParams) -> EmptyResult:
        session = ctx.session
        RELAY.subscribe(session.client_params or session, session, params.level)
        return EmptyResult()

    server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
