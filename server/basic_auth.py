"""The user name of an HTTP Basic `Authorization` header: how Segment's APIs take a write key or an
access token (with an empty password)."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request


def basic_user(request: Request) -> str:
    """The Basic user name, or "" when the header is absent, not Basic, or malformed."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""
