"""Group commit: writes that arrive while another is committing are committed together.

A commit waits for the disk (an fsync), and the Tracking API commits each request before it answers.
Rather than each request waiting for its own commit in turn, a request queues its write and takes
the turn; whoever has the turn writes everything queued so far in one transaction, so the requests
that queued while it waited share one commit. Each write's result goes back to the request that
queued it, and a failed transaction fails every write in it (none of them was kept).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session


@dataclass
class _Write:
    write: Callable[[Session], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Commits queued writes together, in the order they were queued, through `transaction` (a
    context manager giving one write transaction that commits on exit)."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]]):
        self.transaction = transaction
        self._queued: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()

    @property
    def waiting(self) -> int:
        """How many writes are queued for the next commit."""
        with self._queue_lock:
            return len(self._queued)

    def submit(self, write: Callable[[Session], Any]) -> Any:
        """Run `write(session)` in a transaction committed before this returns; its result."""
        mine = _Write(write)
        with self._queue_lock:
            self._queued.append(mine)
        with self._turn:
            if not mine.done:
                self._commit(self._take())
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _take(self) -> list[_Write]:
        with self._queue_lock:
            taken, self._queued = self._queued, []
        return taken

    def _commit(self, writes: list[_Write]) -> None:
        try:
            with self.transaction() as session:
                results = [write.write(session) for write in writes]
        except BaseException as error:  # every write of the transaction failed with it
            for write in writes:
                write.error, write.done = error, True
            return
        for write, result in zip(writes, results):
            write.result, write.done = result, True
