"""Serving the MCP app over HTTP (SSE or streamable HTTP) with uvicorn, behind an optional bearer token.

Bound to a loopback address the server needs no token (and the SDK's DNS-rebinding protection is
on); bound to any other address it refuses to start without one. Streamable HTTP streams are
resumable (`server.event_store`): each opens with a priming event and a `retry` interval.
"""

import hmac
import ipaddress

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import AudienceServer
from server.event_store import RETRY_MS, MemoryEventStore
from server.stopping import GRACE_SECONDS
from server.web import ApiInFront


class TokenRequired(SystemExit):
    """Refusal to expose the server beyond loopback without a bearer token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BearerAuth:
    """ASGI middleware answering 401 unless `Authorization: Bearer <token>` matches."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            supplied = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(supplied, self.expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body",
                            "body": b'{"errors":[{"type":"unauthorized","message":"Send Authorization: Bearer <token>."}]}'})
                return
        await self.app(scope, receive, send)


def serve_http(server: AudienceServer, transport: str, host: str, port: int, token: str | None, api: ASGIApp | None = None) -> None:
    """Serve MCP over SSE or streamable HTTP; `api`, when given, answers `/v1/…` on the same port."""
    if not is_loopback(host) and not token:
        raise TokenRequired(
            f"Refusing to listen on {host} without a bearer token: pass --token or set SEGMENT_AUDIENCES_TOKEN."
        )
    security = None if is_loopback(host) else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if transport == "sse":
        app: ASGIApp = server.sse_app(host=host, transport_security=security)
    else:
        app = server.streamable_http_app(host=host, transport_security=security, event_store=MemoryEventStore(),
                                         retry_interval=RETRY_MS)
    if token:
        app = BearerAuth(app, token)
    if api is not None:
        app = ApiInFront(api, app)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS)
