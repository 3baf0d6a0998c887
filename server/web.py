"""The HTTP side of the server: the Tracking and Profile APIs and download files, next to (or in
front of) the MCP app.

Under an HTTP MCP transport the APIs share its port by default: paths under `/v1/` go to them and
everything else to the MCP app, whose bearer token does not apply to them (they authenticate with
write keys and access tokens). They can also run on a port of their own, which is how they run
beside the stdio transport.
"""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server import console, downloads_api, profile_api, tracking_api
from store.db.store import Store


def api_app(store: Store, token: str | None = None, loopback: bool = True) -> ASGIApp:
    """The Tracking and Profile APIs (the Tracking API open to other origins) and the console (behind
    `token`, or on a `loopback` address only); unknown paths and methods get a JSON answer too."""
    return tracking_api.cross_origin(_refusing_nul(Starlette(
        routes=[*tracking_api.routes(store), *profile_api.routes(store), *downloads_api.routes(store),
                *console.routes(store, token, loopback)],
        exception_handlers={404: _no_route, 405: _no_route},
    )))


def _refusing_nul(app: ASGIApp) -> ASGIApp:
    """`app` behind a 400 for a path or query holding a NUL character (`%00`): no database here
    stores or looks up one faithfully (message bodies are checked by the Tracking API itself)."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            message = "The path or query holds a NUL character (%00), which no identifier or value may contain."
            code = "invalid_request" if scope["path"] in tracking_api.paths() else "validation_error"
            response = JSONResponse({"success": False, "code": code, "message": message,
                                     "error": {"code": code, "message": message}}, status_code=400)
            await response(scope, receive, send)
        else:
            await app(scope, receive, send)

    return route


async def _no_route(request: Request, error: HTTPException) -> JSONResponse:
    message = ("No such endpoint: the Tracking API is POST /v1/{identify,track,page,screen,group,alias,batch}; the "
               "Profile API is GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/"
               "{traits,external_ids,events,metadata,links}.")
    code = "not_found" if error.status_code == 404 else "method_not_allowed"
    return JSONResponse({"success": False, "code": code, "message": message, "error": {"code": code, "message": message}},
                        status_code=error.status_code)


API_PREFIXES = ("/v1/", "/downloads/", "/console")


class ApiInFront:
    """Sends `/v1/…`, `/downloads/…` and `/console…` requests to the APIs and the console, and the rest
    (and lifespan events) to the MCP app."""

    def __init__(self, api: ASGIApp, mcp: ASGIApp):
        self.api = api
        self.mcp = mcp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIXES):
            await self.api(scope, receive, send)
        else:
            await self.mcp(scope, receive, send)


def serve_api_in_background(store: Store, host: str, port: int, token: str | None = None,
                            loopback: bool = True) -> int:
    """Run the APIs and the console on their own port (0: any free one) in a daemon thread; returns the
    port once it is listening. Raises OSError, with the reason, when the port cannot be had."""
    listening = socket.create_server((host, port))
    server = uvicorn.Server(uvicorn.Config(api_app(store, token, loopback), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="segment-audiences-http",
                              daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    if not server.started:
        raise OSError(f"the HTTP server on {host}:{port} did not start")
    return listening.getsockname()[1]
