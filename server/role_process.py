"""A role of the background loops in a child process of `serve` or `worker` (`segment-audiences
worker --only ROLE`): delivery, so that a slow or failing destination's claims, payloads and dead
letters cost the Tracking API and compute nothing; the processor (`ingest`), so that storing the log
never takes the interpreter from the Tracking API's acknowledgements. The processor runs at a lower
CPU priority (`YIELDING`): when both want the CPU, acknowledging (which a client waits for) goes
first and the processor catches up with what the log holds; when the Tracking API is idle the
processor has all it wants, so a realtime audience hears of an event as soon as before.

The child uses the same database (given in its environment, never on its command line, where a
password would show) and no analytic store. A supervisor thread starts it again when it exits
without being told to, after a pause that doubles while it keeps failing (1 s up to 30 s): a
processor's unfinished turn was rolled back and is taken again, outbox rows held under a lease go to
the next sender when the lease runs out. Its log lines go to the parent's
stderr. `stop` asks it to finish (SIGTERM) and kills it after the grace period. A child whose parent
is gone (killed, so it could not stop it) stops itself (`stop_with_parent`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection

logger = logging.getLogger("segment_audiences.worker")
PARENT = "SEGMENT_AUDIENCES_PARENT_PID"  # set for the child: the process it must not outlive
PARENT_CHECK_SECONDS = 1.0
FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 30.0
HEALTHY_SECONDS = 60.0  # a child that ran this long before it exited restarts after the first pause
YIELDING = {"ingest": 10}  # niceness added to these roles' processes


class RoleProcess:
    def __init__(self, database_url: str, role: str):
        self.role = role
        self.environment = {**os.environ, "SEGMENT_AUDIENCES_DB": database_url, PARENT: str(os.getpid())}
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.supervisor = threading.Thread(target=self.supervise, name=f"segment-audiences-{role}-process",
                                           daemon=True)

    def start(self) -> RoleProcess:
        self.supervisor.start()
        return self

    def wait(self) -> None:
        """Until the supervisor stops (it stops only when told to)."""
        self.supervisor.join()

    def supervise(self) -> None:
        pause = FIRST_PAUSE_SECONDS
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(
                [sys.executable, "-m", "server", "worker", "--only", self.role, "--analytics", "none"],
                env=self.environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            if self.stopping.is_set():  # told to stop while it was starting
                self.child.terminate()
            logger.info("%s runs in a child process (pid %d)", self.role, self.child.pid)
            code = self.child.wait()
            if self.stopping.is_set():
                return
            pause = FIRST_PAUSE_SECONDS if time.monotonic() - started > HEALTHY_SECONDS else pause
            logger.error("the %s process (pid %d) exited with %d; starting it again in %.0f s", self.role,
                         self.child.pid, code, pause)
            self.stopping.wait(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)

    def stop(self, seconds: float) -> None:
        """Ask the child to stop and wait up to `seconds` for it, then kill it."""
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.supervisor.join(timeout=5)


def stop_with_parent(stop: Callable[[], None]) -> None:
    """In a child a `RoleProcess` started, call `stop` once its parent is gone (checked every second)."""
    parent = os.environ.get(PARENT)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(PARENT_CHECK_SECONDS)
        logger.warning("the process that started this one (pid %s) is gone; stopping", parent)
        stop()

    threading.Thread(target=watch, name="segment-audiences-parent-watch", daemon=True).start()


def yield_cpu(roles: Collection[str]) -> None:
    """In a child a `RoleProcess` started for a `YIELDING` role, lower this process's CPU priority; called
    before its loops start, as a thread takes the priority of the thread that started it."""
    if os.environ.get(PARENT):
        os.nice(max(YIELDING.get(role, 0) for role in roles))
