"""Time budgets: a block of work (a preview, a forced run) given so many seconds, and the statement
running when they are spent stopped by its engine's own means (SQLite's `interrupt`, PostgreSQL's
query cancel, DuckDB's `interrupt`), so one slow computation cannot hold a worker or a connection
for ever. Where an engine has no way to stop a statement from outside, the work ends when it ends
and is then refused as over budget all the same.

- Previews: SEGMENT_AUDIENCES_PREVIEW_SECONDS, default 60: the Segment app's preview answers in
  about that time or tells the user to save the audience instead.
- Forced runs (`segment_audiences_force_execute_audience_run`): SEGMENT_AUDIENCES_FORCED_RUN_SECONDS,
  default 600.
- Backtests (`segment_audiences_backtest_audience`, every day of one): SEGMENT_AUDIENCES_BACKTEST_SECONDS,
  default 60, as a preview.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from sqlalchemy import Connection

from store.db.errors import DomainError

PREVIEW_SECONDS = 60.0
FORCED_RUN_SECONDS = 600.0
BACKTEST_SECONDS = 60.0
STOP_AGAIN_SECONDS = 0.2


class OverBudget(DomainError):
    """Work stopped (or refused) because it took longer than its time budget."""

    type = "over-budget"

    def __init__(self, what: str, seconds: float):
        super().__init__(f"The {what} took longer than its time budget of {seconds:g} s and was stopped. Narrow it "
                         "(a shorter window, fewer funnel steps), or raise the budget "
                         f"({_VARIABLES[what]}).")
        self.seconds = seconds


_VARIABLES = {"preview": "SEGMENT_AUDIENCES_PREVIEW_SECONDS", "forced run": "SEGMENT_AUDIENCES_FORCED_RUN_SECONDS",
              "backtest": "SEGMENT_AUDIENCES_BACKTEST_SECONDS"}


@dataclass(frozen=True)
class Budget:
    """So many seconds for one kind of work (None: no limit)."""

    what: str
    seconds: float | None = None

    @classmethod
    def preview(cls) -> Budget:
        return cls("preview", float(os.environ.get(_VARIABLES["preview"], PREVIEW_SECONDS)))

    @classmethod
    def forced_run(cls) -> Budget:
        return cls("forced run", float(os.environ.get(_VARIABLES["forced run"], FORCED_RUN_SECONDS)))

    @classmethod
    def backtest(cls) -> Budget:
        return cls("backtest", float(os.environ.get(_VARIABLES["backtest"], BACKTEST_SECONDS)))

    def around(self, stop: Callable[[], None]):
        return nullcontext() if self.seconds is None else _spending(self.what, self.seconds, stop)

    def on(self, connection: Connection):
        """`around` the statements run on an operational store's connection."""
        driver = connection.connection.driver_connection
        return self.around(driver.cancel if connection.dialect.name == "postgresql" else driver.interrupt)


@contextmanager
def _spending(what: str, seconds: float, stop: Callable[[], None]) -> Iterator[None]:
    """Run the block, calling `stop` (which stops the statement running then) once `seconds` have
    passed, and again every `STOP_AGAIN_SECONDS` until the block ends (a statement that had not yet
    begun when it was first called is stopped too); a block that ran longer raises OverBudget,
    whatever it raised or returned."""
    spent, ended = threading.Event(), threading.Event()

    def spend() -> None:
        if ended.wait(seconds):
            return
        spent.set()
        while True:
            stop()
            if ended.wait(STOP_AGAIN_SECONDS):
                return

    stopper = threading.Thread(target=spend, name=f"segment-audiences-{what}-budget", daemon=True)
    started = time.monotonic()
    stopper.start()
    try:
        yield
    except Exception as error:
        if spent.is_set():
            raise OverBudget(what, seconds) from error
        raise
    finally:
        ended.set()
        stopper.join(timeout=10)
    if spent.is_set() or time.monotonic() - started > seconds:
        raise OverBudget(what, seconds)


UNLIMITED = Budget("run")
