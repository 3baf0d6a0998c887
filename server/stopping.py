"""Stopping `serve` and `worker` on SIGINT (Ctrl-C) or SIGTERM (what hosts and process managers send).

The first signal stops the background loops (giving them `GRACE_SECONDS`; deliveries in flight go
back to the queue), closes the databases and exits 0, whatever the main thread is doing: the stdio
transport's reader blocks on standard input, which no signal interrupts. Nothing is lost by the exit:
every piece of work is a transaction, and one cut off is rolled back. A second signal exits at once.
Under the HTTP transports uvicorn takes the first signal itself, lets open requests finish (for at
most `GRACE_SECONDS`) and passes it on.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

GRACE_SECONDS = 3.0

logger = logging.getLogger("segment_audiences")


class Stopper:
    """Runs `cleanup` once, on the first signal or when `stop` is called, and then exits the process
    (on a signal) or returns (when called)."""

    def __init__(self, cleanup: Callable[[], None]):
        self.cleanup = cleanup
        self.signalled = False
        self._once = threading.Lock()
        self._done = False

    def install(self) -> Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        return self

    def stop(self) -> None:
        with self._once:
            if self._done:
                return
            self._done = True
            try:
                self.cleanup()
            except Exception:  # stopping goes on: the process exits next
                logger.exception("stopping failed to clean up")

    def _on_signal(self, signum: int, _frame) -> None:
        if self.signalled:
            os._exit(1)
        self.signalled = True
        logger.info("%s: stopping", signal.Signals(signum).name)
        threading.Thread(target=self._exit, name="segment-audiences-stopping", daemon=True).start()

    def _exit(self) -> None:
        self.stop()
        logger.info("stopped")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
