"""The Tracking API: Segment-compatible `POST /v1/{identify,track,page,screen,group,alias,batch}`.

Authentication is HTTP Basic with the space's write key as user name (or `writeKey` in the body).
A single call may be 32 KB, a batch 500 KB (after gzip decoding). Answers: `{"success": true}`;
`400` with the reason for a malformed body or message; `401` for an unknown write key; `413` when
too large. Every error body is `{"success": false, "code", "message"}` (Segment's libraries read
`code` and `message`). In a batch the valid messages are accepted even when others are rejected:
the `400` names each rejected message by its index, and resending the whole batch is safe because
messageIds are de-duplicated. While the database cannot be reached the answer is `503` with
`Retry-After` (Segment's libraries retry it), and nothing of the call was kept.

A `200` means the request is in the durable log (`store.ingest.log`): the checks that need nothing
stored (authentication, JSON, sizes, each message's shape) are made first, and the processor stores
the messages moments later (de-duplication, filters, identity resolution, events and traits).

Browsers send from pages on other origins (analytics.js posts `text/plain` bodies carrying
`writeKey`), so these routes, and only these, answer CORS preflights and allow any origin: a write
key is public by design. The Profile API and downloads carry secrets and stay same-origin.
"""

from __future__ import annotations

import functools
import logging
import zlib

import anyio.to_thread
import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.tracking.messages import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, TYPES, MessageError
from server.basic_auth import basic_user
from store.catalog import spaces
from store.db.outage import RETRY_AFTER_SECONDS, Unavailable
from store.db.store import Store
from store.ingest.ingest import acknowledge

SOURCE_ID = "tracking-api"
SHORT_FORMS = {"i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group", "a": "alias", "b": "batch"}
log = logging.getLogger("segment_audiences.tracking")


class _TooLarge(Exception):
    pass


CODES = {400: "invalid_request", 401: "unauthorized", 413: "payload_too_large", 503: "unavailable"}


def paths() -> set[str]:
    """Every Tracking API path, long and short forms."""
    return {f"/v1/{kind}" for kind in (*TYPES, "batch", *SHORT_FORMS)}


def cross_origin(app: ASGIApp) -> ASGIApp:
    """`app` with CORS on the Tracking API paths: preflights answered for POST with the headers the
    Segment libraries send, and `Access-Control-Allow-Origin: *` on every answer."""
    cors = CORSMiddleware(app, allow_origins=["*"], allow_methods=["POST"], max_age=86_400,
                          allow_headers=["Authorization", "Content-Type", "Content-Encoding"])
    tracking = paths()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in tracking:
            await cors(scope, receive, send)
        else:
            await app(scope, receive, send)

    return route


def routes(store: Store) -> list[Route]:
    handlers = {kind: _handler(store, kind) for kind in (*TYPES, "batch")}
    table = [Route(f"/v1/{kind}", handler, methods=["POST"]) for kind, handler in handlers.items()]
    table += [Route(f"/v1/{short}", handlers[kind], methods=["POST"]) for short, kind in SHORT_FORMS.items()]
    return table


def _handler(store: Store, kind: str):
    limit = MAX_BATCH_BYTES if kind == "batch" else MAX_MESSAGE_BYTES

    async def handle(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, limit)
            body = orjson.loads(raw)
        except _TooLarge:
            return _failure(413, f"request body is larger than {limit // 1024} KB")
        except (ValueError, zlib.error):
            return _failure(400, "request body is not valid JSON (or not valid gzip)")
        if not isinstance(body, dict):
            return _failure(400, "request body must be a JSON object")
        try:
            kept = await anyio.to_thread.run_sync(
                functools.partial(_keep, store, _write_key(request, body), kind, raw, body))
        except Unavailable as error:
            return _failure(503, error.message, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except MessageError as error:
            return _failure(400, str(error))
        if kept is None:
            return _failure(401, "unknown write key: send it as the Basic auth user name or as writeKey")
        return _answer(kind, *kept)

    return handle


def _keep(store: Store, write_key: str, kind: str, raw: bytes, body: dict) -> tuple[str, int, list] | None:
    """The write key's space, and what `acknowledge` made of the request (None for an unknown key):
    one trip to a worker thread for both, as a request is answered as soon as they are done."""
    space_id = spaces.space_for_write_key(store, write_key)
    if space_id is None:
        return None
    return space_id, *acknowledge(store, space_id, kind, raw, body, SOURCE_ID)


def _answer(kind: str, space_id: str, accepted: int, rejected: list) -> JSONResponse:
    """`200`, or `400` naming what was refused (a batch's other messages were kept)."""
    if rejected and kind != "batch":
        return _failure(400, rejected[0].message)
    if rejected:
        log.warning("refused %d of %d messages of a batch into %s, e.g. #%d: %s", len(rejected),
                    accepted + len(rejected), space_id, rejected[0].index, rejected[0].message)
        return JSONResponse(
            {"success": False, "code": CODES[400], "accepted": accepted,
             "message": f"{len(rejected)} of {accepted + len(rejected)} messages were rejected; the others were "
                        "accepted", "rejected": [{"index": r.index, "message": r.message} for r in rejected]},
            status_code=400,
        )
    return JSONResponse({"success": True})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    body = b"".join(chunks)
    if not gzipped:
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    plain = inflater.decompress(body, limit + 1)
    if len(plain) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return plain


def _write_key(request: Request, body: dict) -> str:
    key = basic_user(request) or body.get("writeKey")
    return key if isinstance(key, str) else ""


def _failure(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    log.warning("refused a call (%d %s): %s", status, CODES[status], message)
    return JSONResponse({"success": False, "code": CODES[status], "message": message}, status_code=status,
                        headers=headers)
