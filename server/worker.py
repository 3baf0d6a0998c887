"""The background loops, each in a thread of its own so that a slow one never holds up another: the
processor storing what the Tracking API acknowledged; realtime recomputes (one pass per space at a
time, up to four spaces at once); previews; due runs (first runs, cadences, sweeps, schedules), the
pruning of the analytic store's change log and alert checks; outbox delivery, with its own event loop; and, when
this process has an analytic store, its replication.

They run inside `serve`, or alone as `segment-audiences worker`, all of them or the roles `--only`
names; the processor and delivery, beside another role, each run in a child process of their own
(`start_loops`, `server.role_process`). Each step is a store
service that takes `now` from the store's clock, so tests call the same services directly. A step
that fails is logged and retried on the next tick; the loops themselves never stop on an error.

Delivery runs one lane per activation or connection with rows due: each lane claims, sends and
records only its own rows, so a slow, failing or paused destination holds up nothing but itself.
SEGMENT_AUDIENCES_LEASE_SECONDS sets how long a claimed row is held without a heartbeat (default 60).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import anyio

from backend.delivery.sender import DEADLINE_SECONDS
from server.role_process import RoleProcess
from store.analytic.replication import prune_changes
from store.compute import previews, recompute
from store.compute.runs import Cadence
from store.insights import alerts
from store.db.database import sqlite_file
from store.db.outage import Unavailable
from store.db.store import Store
from store.delivery import outbox
from store.delivery.delivery import deliver_once, sender_for
from store.ingest import log, processor

logger = logging.getLogger("segment_audiences.worker")
TICK_SECONDS = 0.1
REALTIME_TICK_SECONDS = 0.05
INGEST_POLL_SECONDS = 0.05
REALTIME_THREADS = 4
RUNS_SECONDS = 1.0
PRUNE_EVERY_TICKS = 600
ROLES = ("ingest", "compute", "delivery")
REPLICATE_SECONDS = 1.0


def alert_seconds() -> float:
    """SEGMENT_AUDIENCES_ALERT_SECONDS: how often alerts are checked (default 60)."""
    return float(os.environ.get("SEGMENT_AUDIENCES_ALERT_SECONDS", "60"))


def cadence_from_env() -> Cadence:
    """SEGMENT_AUDIENCES_BATCH_HOURS (default 8) and SEGMENT_AUDIENCES_SWEEP_MINUTES (default 15)."""
    hours = float(os.environ.get("SEGMENT_AUDIENCES_BATCH_HOURS", "8"))
    minutes = float(os.environ.get("SEGMENT_AUDIENCES_SWEEP_MINUTES", "15"))
    return Cadence(batch_ms=int(hours * 3_600_000), sweep_ms=int(minutes * 60_000))


class Worker:
    """The loops of `roles`: `ingest` (the processor), `compute` (realtime passes, previews, due runs,
    the analytic store's replication) and `delivery` (the outbox)."""

    def __init__(self, store: Store, cadence: Cadence | None = None, roles: Collection[str] = ROLES):
        self.store = store
        self.cadence = cadence or cadence_from_env()
        self.roles = frozenset(roles)
        self.stopping = threading.Event()
        loops = {"ingest": (("ingest", self.ingest),),
                 "compute": (("realtime", self.realtime), ("previews", self.previews), ("runs", self.runs))}
        self.threads = [threading.Thread(target=loop, name=f"segment-audiences-{name}", daemon=True)
                        for role in ROLES if role in self.roles for name, loop in loops.get(role, ())]
        self.delivery = DeliveryWorker(store) if "delivery" in self.roles else None
        self.replication = threading.Thread(target=self.replicate, name="segment-audiences-replication", daemon=True)

    def start(self) -> Worker:
        for thread in self.threads:
            thread.start()
        if self.delivery is not None:
            self.delivery.start()
        if "compute" in self.roles and self.store.analytics is not None:
            self.replication.start()
        return self

    def wait(self) -> None:
        """Until the loops stop (they stop only when told to)."""
        for thread in self.threads:
            thread.join()
        if self.delivery is not None:
            self.delivery.wait()

    def stop(self, seconds: float = 10.0) -> None:
        """Tell the loops to stop and wait up to `seconds` in all for them (a step still running after
        that is cut off with the process, its transaction rolled back)."""
        deadline = time.monotonic() + seconds
        self.stopping.set()
        if self.delivery is not None:
            self.delivery.stop(seconds)
        for thread in [*self.threads, self.replication]:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def replicate(self) -> None:
        """Keep the analytic store close behind (a first copy takes a while), so a full run has little
        to copy first."""
        while not self.stopping.is_set():
            self.step("replication", self.store.analytics.catch_up)
            self.stopping.wait(REPLICATE_SECONDS)

    def ingest(self) -> None:
        """Store what the Tracking API acknowledged: at once after an append in this process, within
        INGEST_POLL_SECONDS after one in another, and what is left when told to stop (as far as the
        stop's deadline allows: the rest waits in the log for the next start)."""
        while not self.stopping.is_set():
            log.appended.clear()
            if not self.step("ingest", lambda: processor.process_waiting(self.store)):
                log.appended.wait(INGEST_POLL_SECONDS)
        self.step("ingest", lambda: processor.process_all(self.store))

    def realtime(self) -> None:
        """Passes over the spaces with changed profiles, several spaces at once (at most one pass per
        space), so that a space with many computations never holds up another's."""
        running: dict[str, Future] = {}
        with ThreadPoolExecutor(REALTIME_THREADS, thread_name_prefix="segment-audiences-realtime") as pool:
            while not self.stopping.is_set():
                for space_id in [space_id for space_id, future in running.items() if future.done()]:
                    del running[space_id]
                for space_id in self.step("realtime", lambda: recompute.spaces_due(self.store)) or ():
                    if space_id not in running:
                        running[space_id] = pool.submit(
                            self.step, "realtime", functools.partial(recompute.space_pass, self.store, space_id))
                self.stopping.wait(REALTIME_TICK_SECONDS)

    def previews(self) -> None:
        while not self.stopping.is_set():
            if not self.step("previews", lambda: previews.run_pending(self.store)):
                self.stopping.wait(TICK_SECONDS)

    def runs(self) -> None:
        ticks, checked = 0, float("-inf")
        while not self.stopping.is_set():
            self.step("due runs", lambda: recompute.run_due(self.store, self.cadence))
            if ticks % PRUNE_EVERY_TICKS == 0:
                self.step("change log pruning", lambda: prune_changes(self.store))
            if time.monotonic() - checked >= alert_seconds():
                checked = time.monotonic()
                self.step("alert checks", lambda: len(alerts.check_all(self.store)))
            ticks += 1
            self.stopping.wait(RUNS_SECONDS)

    @staticmethod
    def step(name: str, work) -> int:
        """`work()`, or 0 when it failed (logged: the loops go on)."""
        try:
            return work()
        except Unavailable:  # logged once by the store when it began; try again next tick
            return 0
        except Exception:  # the loop's boundary: log, and try again next tick
            logger.exception("background %s failed; retrying", name)
            return 0


class DeliveryWorker:
    """Sends the outbox: a supervisor looks for targets with rows due and starts a lane for each that
    has none running; a lane runs passes over its target's rows until none are left, through the
    sender's client for its destination lane. Leases are held under this process's owner id."""

    def __init__(self, store: Store, *, deadline_seconds: float = DEADLINE_SECONDS):
        self.store = store
        self.lease_ms = int(float(os.environ.get("SEGMENT_AUDIENCES_LEASE_SECONDS", outbox.LEASE_MS / 1000)) * 1000)
        self.deadline_seconds = deadline_seconds
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: anyio.run(self.main), name="segment-audiences-delivery",
                                       daemon=True)

    def start(self) -> DeliveryWorker:
        self.thread.start()
        return self

    def wait(self) -> None:
        self.thread.join()

    def stop(self, seconds: float = 15.0) -> None:
        self.stopping.set()
        self.thread.join(timeout=seconds)

    async def main(self) -> None:
        running: set[str] = set()
        async with sender_for(self.store, self.deadline_seconds) as sender, anyio.create_task_group() as lanes:
            while not self.stopping.is_set():
                try:
                    due = await anyio.to_thread.run_sync(outbox.due_targets, self.store, frozenset(running))
                except Unavailable:  # logged once by the store when it began
                    due = set()
                except Exception:  # the loop's boundary: log, and look again next tick
                    logger.exception("background delivery failed to look for due rows; retrying")
                    due = set()
                for target_id in due - running:
                    running.add(target_id)
                    lanes.start_soon(self.lane, sender, target_id, running)
                await anyio.sleep(TICK_SECONDS)
            lanes.cancel_scope.cancel()

    async def lane(self, sender, target_id: str, running: set[str]) -> None:
        try:
            size = await anyio.to_thread.run_sync(outbox.pass_size, self.store, target_id)
            while not self.stopping.is_set():
                if not await deliver_once(self.store, sender, self.owner, size, lease_ms=self.lease_ms,
                                          target_id=target_id):
                    return
        except Unavailable:  # logged once by the store; the supervisor starts the lane again
            pass
        except Exception:  # the lane's boundary: log, and let the supervisor start it again
            logger.exception("delivery to %s failed; retrying", target_id)
        finally:
            running.discard(target_id)


APART = ("ingest", "delivery")  # the roles that run in a child process beside others


@dataclass
class SplitLoops:
    """Loops split across processes: compute (if any) in this one, the processor and delivery in
    child processes beside it. Stopping stores what the log still holds once the processor's
    process has gone (one stopped while it was starting has stored nothing), as far as the deadline
    allows, so a graceful stop leaves nothing acknowledged unstored."""

    store: Store
    worker: Worker | None
    children: list[RoleProcess]

    def wait(self) -> None:
        if self.worker is not None:
            self.worker.wait()
        for child in self.children:
            child.wait()

    def stop(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        stopping = [threading.Thread(target=child.stop, args=(seconds,)) for child in self.children]
        for thread in stopping:
            thread.start()
        if self.worker is not None:
            self.worker.stop(seconds)
        for thread in stopping:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        if any(child.role == "ingest" for child in self.children):
            rest = threading.Thread(target=Worker.step, args=("ingest", lambda: processor.process_all(self.store)),
                                    daemon=True, name="segment-audiences-ingest-rest")
            rest.start()
            rest.join(timeout=max(0.0, deadline - time.monotonic()))


def start_loops(store: Store, roles: Collection[str] = ROLES) -> Worker | SplitLoops:
    """Start the loops of `roles` as `serve` and `worker` run them: the processor and delivery, beside
    any other role, each in a child process of its own (`server.role_process`), so that storing the
    log never takes the interpreter from the Tracking API and sending never shares one with ingest or
    compute; all here when there is one role, or when the database is in memory, which no other
    process can open."""
    chosen = [role for role in ROLES if role in roles]
    in_memory = store.url.startswith("sqlite") and sqlite_file(store.url) is None
    if len(chosen) == 1 or in_memory:
        return Worker(store, roles=chosen).start()
    children = [RoleProcess(store.url, role).start() for role in chosen if role in APART]
    here = [role for role in chosen if role not in APART]
    return SplitLoops(store, Worker(store, roles=here).start() if here else None, children)
