"""Prefixed ids that sort by creation time and cannot be guessed, and secrets for credentials."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """`<prefix>_` + 10 characters of millisecond time + 16 random characters (80 bits), base32."""
    millis = time.time_ns() // 1_000_000
    stamp = "".join(_CROCKFORD[(millis >> shift) & 31] for shift in range(45, -5, -5))
    return f"{prefix}_{stamp}{''.join(secrets.choice(_CROCKFORD) for _ in range(16))}"


def new_secret(prefix: str) -> str:
    """A credential: a readable prefix and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"
