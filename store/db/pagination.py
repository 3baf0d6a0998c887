"""Cursor pagination in the Public API's shape: opaque cursors, `next`/`previous`, `totalEntries`.

A cursor is the base64 of the offset of a page's first item, as Segment's own cursors look; the
ordering behind every list is by creation, so pages are stable while nothing is added. An offset
beyond `MAX_OFFSET` is no cursor this server gave out (and no database takes it).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from store.db.errors import InputValidation

DEFAULT_COUNT = 200
MAX_OFFSET = 2**53


@dataclass(frozen=True)
class PageRequest:
    cursor: str | None = None
    count: int = DEFAULT_COUNT


@dataclass(frozen=True)
class Page:
    items: list[Any]
    current: str
    next: str | None
    previous: str | None
    total: int


def encode_cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        offset = int(base64.b64decode(cursor.encode(), validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise InputValidation(
            f"'{cursor}' is not a valid cursor; pass a cursor returned in pagination.next or pagination.previous.",
            field="pagination.cursor",
        )
    return offset


def paginate(session: Session, statement: Any, request: PageRequest) -> Page:
    """Run an ordered `select` for one page, counting the whole result for `totalEntries`."""
    offset = decode_cursor(request.cursor)
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    items = list(session.exec(statement.offset(offset).limit(request.count)).all())
    return _page(items, offset, request.count, total)


def slice_page(items: list[Any], request: PageRequest) -> Page:
    """One page of a list already built in full and ordered."""
    offset = decode_cursor(request.cursor)
    return _page(items[offset : offset + request.count], offset, request.count, len(items))


def _page(items: list[Any], offset: int, count: int, total: int) -> Page:
    return Page(
        items=items,
        current=encode_cursor(offset),
        next=encode_cursor(offset + count) if offset + count < total else None,
        previous=encode_cursor(max(offset - count, 0)) if offset > 0 else None,
        total=total,
    )
