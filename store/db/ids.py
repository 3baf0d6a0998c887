"""Prefixed ids that sort by creation time and cannot be guessed, and secrets for credentials."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """`<prefix>_` + 10 characters of millisecond time + 16 random characters (80 bits), base32."""
    millis = time.time_ns() // 1_000_000
    number = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{''.join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -5, -5))}"


def new_secret(prefix: str) -> str:
    """A credential: a readable prefix and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"
