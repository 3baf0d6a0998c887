"""The background loop: realtime recomputes, previews, due runs (cadences, sweeps, schedules).

It runs in a daemon thread inside `serve` (or alone as `segment-audiences worker`). Each step is a
store service that takes `now` from the store's clock, so tests call the same services directly.
A step that fails is logged and retried on the next tick; the loop itself never stops on an error.
"""

from __future__ import annotations

import logging
import os
import threading

from store import previews, recompute
from store.runs import Cadence
from store.store import Store

logger = logging.getLogger("segment_audiences.worker")
TICK_SECONDS = 0.1
DUE_EVERY_TICKS = 10


def cadence_from_env() -> Cadence:
    """SEGMENT_AUDIENCES_BATCH_HOURS (default 8) and SEGMENT_AUDIENCES_SWEEP_MINUTES (default 15)."""
    hours = float(os.environ.get("SEGMENT_AUDIENCES_BATCH_HOURS", "8"))
    minutes = float(os.environ.get("SEGMENT_AUDIENCES_SWEEP_MINUTES", "15"))
    return Cadence(batch_ms=int(hours * 3_600_000), sweep_ms=int(minutes * 60_000))


class Worker:
    def __init__(self, store: Store, cadence: Cadence | None = None):
        self.store = store
        self.cadence = cadence or cadence_from_env()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="segment-audiences-worker", daemon=True)

    def start(self) -> Worker:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def loop(self) -> None:
        ticks = 0
        while not self.stopping.is_set():
            busy = self.step("realtime", lambda: recompute.process_dirty(self.store))
            self.step("previews", lambda: previews.run_pending(self.store))
            if ticks % DUE_EVERY_TICKS == 0:
                self.step("due runs", lambda: recompute.run_due(self.store, self.cadence))
            ticks += 1
            if not busy:
                self.stopping.wait(TICK_SECONDS)

    def step(self, name: str, work) -> int:
        try:
            return work()
        except Exception:  # the loop's boundary: log, and try again next tick
            logger.exception("background %s failed; retrying", name)
            return 0
