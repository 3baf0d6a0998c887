"""A database that does not answer is an outage, not a failure of each request: it is told apart from
other errors, reported to callers as `Unavailable` (retry later; nothing was written), and logged by
each process once when it starts and once when it ends, with its length, instead of a traceback per
request or per tick of a background loop.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from store.db.errors import DomainError, cause

logger = logging.getLogger("segment_audiences.database")
RETRY_AFTER_SECONDS = 5


class Unavailable(DomainError):
    """The database could not be reached or did not answer; nothing of the request was written."""

    type = "unavailable"

    def __init__(self, cause: str):
        super().__init__(f"The database is unavailable right now ({cause}); nothing of this request was written. "
                         f"Retry in {RETRY_AFTER_SECONDS} seconds or so.")


def is_outage(error: BaseException) -> bool:
    """Whether a database error means it cannot be reached or used now (not that the request is wrong)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (OperationalError, InterfaceError))


class OutageLog:
    """Whether the database is unreachable now, as one process sees it, logging only the changes."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> Unavailable:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                logger.error("the database is unreachable (%s); requests answer 'unavailable' and background work "
                             "waits until it is back", cause(error))
        return Unavailable(cause(error))

    def answered(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is not None:
                logger.warning("the database is reachable again, after %.1f s", time.monotonic() - self._since)
                self._since = None
