"""CSV downloads of an audience's members or a computed trait's values as they stood at a past hour
(`reference/engine-semantics.md` §8).

The hour is the bucket `hour`..`hour + 1h`; the snapshot is the state at the end of that bucket (or
now, for the current hour), reconstructed from membership stays and value history, with the external
ids each profile had by then. One month is kept, as in Segment. Formats:

- `unformatted`: `key,external_ids` (traits: `key,value,external_ids`), ids as a JSON object of lists;
- `formatted`: the same plus one column per id value, indexed (`email`, `email_1`, …);
- `single_column`: one external id type, one row per value, SHA-256 hashed (uppercase hex) unless
  `hashed` is false.

Profiles are written in chunks straight to a file, so an export never sits in memory. The file is
served under an unguessable token until it expires (DOWNLOAD_TTL_MS), then deleted; while it lives,
the MCP server also offers it as a resource named by its space and token (`server.resources`).
"""

from __future__ import annotations

import csv
import hashlib
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from sqlalchemy import null, or_
from sqlmodel import Session, col, select

from backend.clock import to_ms
from store.db.errors import InputValidation, NotFound
from store.db.models import Audience, ComputedTrait, ComputedValue, Download, Membership
from store.db.store import Store
from store.profiles import external_ids

FORMATS = ("unformatted", "formatted", "single_column")
RETENTION = timedelta(days=30)
HOUR_MS = 3_600_000
DOWNLOAD_TTL_MS = HOUR_MS
CHUNK = 1000


@dataclass(frozen=True)
class Written:
    """A download once its file is written: where to fetch it, and what the MCP resource shows."""

    token: str
    space_id: str
    name: str
    rows: int
    size: int
    urls: list[str]


@dataclass(frozen=True)
class Export:
    collection_id: str
    space_id: str
    kind: str  # audience | trait
    at_ms: int
    format: str
    id_type: str
    hashed: bool


def create_download(store: Store, collection_id: str, hour: str, fmt: str = "unformatted",
                    id_type: str = "email", hashed: bool = True) -> Written:
    """Write the CSV; what was written comes back with the URLs it can be fetched from."""
    if fmt not in FORMATS:
        raise InputValidation(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'.", field="format")
    now = store.now()
    start = _hour(hour, now)
    with store.read() as session:
        export = _export(session, collection_id, start, now, fmt, id_type.strip(), hashed)
    _forget_expired(store, to_ms(now))
    token = secrets.token_urlsafe(32)
    directory = store.data_dir / "downloads"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{token}.csv"
    with store.read() as session, path.open("w", newline="", encoding="utf-8") as file:
        count = write_csv(session, export, file)
    with store.write() as session:
        session.add(Download(token=token, space_id=export.space_id, collection_id=collection_id,
                             hour_ms=to_ms(start), format=fmt, path=str(path), rows=count,
                             created_at_ms=to_ms(now), expires_at_ms=to_ms(now) + DOWNLOAD_TTL_MS))
    name = _file_name(collection_id, to_ms(start))
    if store.download_base_url:
        urls = [f"{store.download_base_url.rstrip('/')}/downloads/{token}/{name}"]
    else:
        urls = [path.resolve().as_uri()]
    return Written(token, export.space_id, name, count, path.stat().st_size, urls)


def find_file(store: Store, token: str, space_id: str | None = None) -> Path | None:
    """The file behind a download token while it has not expired (and, given `space_id`, only if
    the download is that space's)."""
    with store.read() as session:
        download = session.get(Download, token)
    if download is None or download.expires_at_ms <= to_ms(store.now()):
        return None
    if space_id is not None and download.space_id != space_id:
        return None
    path = Path(download.path)
    return path if path.exists() else None


def live_downloads(store: Store) -> list[Written]:
    """The downloads not yet expired whose files are still there, newest first (urls left empty)."""
    with store.read() as session:
        rows = session.exec(select(Download).where(Download.expires_at_ms > to_ms(store.now()))
                            .order_by(col(Download.created_at_ms).desc(), Download.token)).all()
    found = []
    for row in rows:
        path = Path(row.path)
        if path.exists():
            found.append(Written(row.token, row.space_id, _file_name(row.collection_id, row.hour_ms), row.rows,
                                 path.stat().st_size, []))
    return found


def _file_name(collection_id: str, hour_ms: int) -> str:
    return f"{collection_id}-{datetime.fromtimestamp(hour_ms / 1000, timezone.utc):%Y-%m-%dT%H}.csv"


def _hour(text: str, now: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        start = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    except (ValueError, OverflowError):
        raise InputValidation(f"hour must be an ISO-8601 time such as 2025-05-07T23:00:00Z within the last 30 "
                              f"days, not '{text[:40]}'.", field="hour") from None
    if start > now:
        raise InputValidation(f"hour {start:%Y-%m-%dT%H:00:00Z} is in the future.", field="hour")
    if start < now - RETENTION:
        raise InputValidation("Only the last 30 days are kept; ask for a more recent hour.", field="hour")
    return start


def _export(session: Session, collection_id: str, start: datetime, now: datetime, fmt: str, id_type: str,
            hashed: bool) -> Export:
    audience = session.get(Audience, collection_id)
    trait = None if audience else session.get(ComputedTrait, collection_id)
    found = audience or trait
    if found is None or found.deleted_at is not None:
        raise NotFound("audience or computed trait", collection_id, field="collectionId")
    at_ms = min(to_ms(start) + HOUR_MS, to_ms(now) + 1)
    if to_ms(found.created_at) >= at_ms:
        raise InputValidation(
            f"'{collection_id}' was created at {found.created_at:%Y-%m-%dT%H:%M:%SZ}; ask for that hour or a later one.",
            field="hour")
    if fmt == "single_column" and not id_type:
        raise InputValidation("externalIdType must name an external id type, e.g. email.", field="externalIdType")
    return Export(collection_id, found.space_id, "audience" if audience else "trait", at_ms, fmt, id_type, hashed)


def write_csv(session: Session, export: Export, file) -> int:
    """Write the export to `file`; returns the number of data rows."""
    writer = csv.writer(file, lineterminator="\n")
    value_column = ["value"] if export.kind == "trait" else []
    if export.format == "single_column":
        writer.writerow([export.id_type])
        count = 0
        for chunk in _chunks(session, export):
            for _, _, ids in chunk:
                for value in ids.get(export.id_type, []):
                    writer.writerow([_hash(value) if export.hashed else value])
                    count += 1
        return count
    widths: Counter = Counter()
    if export.format == "formatted":
        for chunk in _chunks(session, export):
            for _, _, ids in chunk:
                for kind, values in ids.items():
                    widths[kind] = max(widths[kind], len(values))
    indexed = [(kind, index) for kind in sorted(widths) for index in range(widths[kind])]
    writer.writerow(["key", *value_column, "external_ids", *[kind if i == 0 else f"{kind}_{i}" for kind, i in indexed]])
    count = 0
    for chunk in _chunks(session, export):
        for profile_id, value, ids in chunk:
            cells = [_cell(value)] if export.kind == "trait" else []
            spread = [ids[kind][i] if i < len(ids.get(kind, [])) else "" for kind, i in indexed]
            writer.writerow([profile_id, *cells, orjson.dumps(ids).decode(), *spread])
            count += 1
    return count


def _chunks(session: Session, export: Export) -> Iterator[list[tuple[str, str | None, dict[str, list[str]]]]]:
    """(profile id, value, external ids) in profile id order, CHUNK profiles at a time."""
    after = ""
    while True:
        members = session.exec(_members(export).where(_profile_column(export) > after)
                               .order_by(_profile_column(export)).limit(CHUNK)).all()
        if not members:
            return
        ids = external_ids.by_profile(session, [profile_id for profile_id, _ in members], export.at_ms)
        yield [(profile_id, value, ids.get(profile_id, {})) for profile_id, value in members]
        after = members[-1][0]


def _profile_column(export: Export):
    return Membership.profile_id if export.kind == "audience" else ComputedValue.profile_id


def _members(export: Export):
    if export.kind == "audience":
        return select(Membership.profile_id, null().label("value")).where(
            Membership.computation_id == export.collection_id, Membership.entered_at_ms < export.at_ms,
            or_(col(Membership.exited_at_ms).is_(None), Membership.exited_at_ms >= export.at_ms)).distinct()
    return select(ComputedValue.profile_id, ComputedValue.value).where(
        ComputedValue.computation_id == export.collection_id, ComputedValue.from_ms < export.at_ms,
        or_(col(ComputedValue.until_ms).is_(None), ComputedValue.until_ms >= export.at_ms))


def _cell(value: str | None) -> str:
    decoded = None if value is None else orjson.loads(value)
    return decoded if isinstance(decoded, str) else "" if decoded is None else orjson.dumps(decoded).decode()


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest().upper()


def _forget_expired(store: Store, now_ms: int) -> None:
    with store.write() as session:
        expired = session.exec(select(Download).where(Download.expires_at_ms <= now_ms)).all()
        for download in expired:
            Path(download.path).unlink(missing_ok=True)
            session.delete(download)
