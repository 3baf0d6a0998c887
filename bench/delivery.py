"""Delivery: how many audience events per second reach a destination, and how long an ingested event
takes to arrive there for a realtime audience.

A receiver (bench/receiver.py) runs in its own process on loopback. Throughput: 50,000 members are
resynced to a Webhooks activation, once with one request per event ("Send") and once in batches of
100 ("Send Batch"); the background loops run as `serve` runs them (the processor and delivery in
child processes, compute here), and from the first row recorded delivered (once the delivery
process has started) until every row is, the rows delivered in between give deliveries/s. The
reference is plain `httpx` posting to the same receiver with the same client settings and
concurrency, from a process of its own. "Send" and the reference take turns of a few seconds (the
delivery process is paused, SIGSTOP, while the reference sends), because this machine's speed
drifts by 10 to 30 % within a minute; both are bound by the CPU of the process that sends, so the
CPU each spends per request (read from /proc: Linux only) is reported beside the rates. Latency:
once a first event has arrived (the processes have started), events that each make a new user a
member of a realtime audience are ingested at 500/s; the receiver notes when each user's Audience
Entered arrives (once through "Send", once through "Send Batch"). Figures go to
bench/results/delivery.json.
Usage: python bench/delivery.py [--members 50000] [--rate 500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import publish  # noqa: E402
from bench.ingest import free_port  # noqa: E402
from server.worker import start_loops  # noqa: E402
from store.catalog import activations, audiences, destination_instances, destinations, spaces  # noqa: E402
from store.compute import recompute, runs  # noqa: E402
from store.db.store import Store  # noqa: E402
from store.delivery import destination_catalog  # noqa: E402
from store.ingest.ingest import accept  # noqa: E402

TURN_SECONDS = 3.0
TURN_REQUESTS = 2_000
CONCURRENCY = destination_catalog.BY_SLUG["webhooks-actions"].max_in_flight
POLL_SECONDS = 0.5  # counting delivered rows takes milliseconds; more often, it would take CPU from the sending
SEND = {"id": "webhooks-send", "settings": {}}
SEND_BATCH = {"id": "webhooks-send-batch", "settings": {"batchSize": 100}}


def start_receiver() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "receiver.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/stats")
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("receiver did not start")


def received(url: str) -> dict:
    return httpx.get(f"{url}/stats", timeout=30).json()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reference_process(commands: Connection, url: str) -> None:
    """The reference, in a process of its own as the delivery process is: for each number it is sent,
    that many posts of plain httpx to the receiver at the lane's concurrency through one client kept
    across turns; it answers each turn's (seconds, CPU seconds). None ends it."""
    anyio.run(reference_turns, commands, url)


async def reference_turns(commands: Connection, url: str) -> None:
    body = orjson.dumps({"type": "track", "userId": "reference", "event": "Audience Entered"})
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as client:
        slots = anyio.Semaphore(CONCURRENCY)

        async def post() -> None:
            async with slots:
                await client.post(f"{url}/reference", content=body, headers={"Content-Type": "application/json"})

        while (requests := await anyio.to_thread.run_sync(commands.recv)) is not None:
            started, cpu = time.perf_counter(), time.process_time()
            async with anyio.create_task_group() as group:
                for _ in range(requests):
                    group.start_soon(post)
            commands.send((time.perf_counter() - started, time.process_time() - cpu))


def signed_up(users: range, event: str = "Signed Up") -> list[dict]:
    return [{"type": "track", "userId": f"user-{n}", "event": event,
             "timestamp": datetime.now(timezone.utc).isoformat()} for n in users]


def delivered(store: Store, target_id: str) -> int:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT count(*) FROM outbox WHERE target_id = ? AND state = 'delivered'",
                                          (target_id,)).scalar_one()


def first_delivered(store: Store, target_id: str) -> int:
    """How many rows are delivered once the first is: the delivery process's start is not measured."""
    while not delivered(store, target_id):
        time.sleep(0.01)
    return delivered(store, target_id)


def activate(store: Store, space_id: str, audience_id: str, url: str, action: dict, resync: bool) -> str:
    destination = destination_instances.add_destination(store, space_id, "webhooks-actions", "Receiver", {})
    connection = destinations.connect(store, space_id, audience_id, destination.id, "destination", None, None)
    return activations.add_activation(store, space_id, audience_id, connection.connection.id,
                                      activation_name="Bench", activation_type="Audience Entered",
                                      perform_resync=resync, personalization=None,
                                      destination_mapping={"actionId": action["id"],
                                                           "settings": {"url": url, **action["settings"]}}).id


def throughput(store: Store, space_id: str, audience_id: str, url: str, members: int, action: dict) -> dict:
    worker = start_loops(store)
    try:
        activation_id = activate(store, space_id, audience_id, url, action, resync=True)
        started, first = time.perf_counter(), first_delivered(store, activation_id)
        while delivered(store, activation_id) < members:
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    finally:
        worker.stop(15)
    return {"seconds": round(seconds, 2), "deliveries_per_s": round((members - first) / seconds)}


def send_in_turns_with_reference(store: Store, space_id: str, audience_id: str, url: str, members: int) -> dict:
    """"Send" and the reference in turns until every member is delivered: the delivery process sends
    for TURN_SECONDS, then is stopped (SIGSTOP) while plain httpx makes TURN_REQUESTS requests, and
    goes on (SIGCONT). Each side's requests/s and CPU per request are summed over its turns."""
    spawning = multiprocessing.get_context("spawn")
    commands, its_end = spawning.Pipe()
    reference_sender = spawning.Process(target=reference_process, args=(its_end, url))
    reference_sender.start()
    worker = start_loops(store)
    send = {"seconds": 0.0, "requests": 0, "cpu_seconds": 0.0}
    reference = {"seconds": 0.0, "requests": 0, "cpu_seconds": 0.0}
    try:
        sending = delivery_pid(worker)
        activation_id = activate(store, space_id, audience_id, url, SEND, resync=True)
        done = first_delivered(store, activation_id)
        while done < members:
            started, cpu, before = time.perf_counter(), cpu_seconds(sending), done
            while done < members and time.perf_counter() - started < TURN_SECONDS:
                time.sleep(POLL_SECONDS)
                done = delivered(store, activation_id)
            os.kill(sending, signal.SIGSTOP)
            try:
                seconds, done = time.perf_counter() - started, delivered(store, activation_id)
                _add(send, seconds, done - before, cpu_seconds(sending) - cpu)
                if done < members:
                    commands.send(TURN_REQUESTS)
                    seconds, cpu_used = commands.recv()
                    _add(reference, seconds, TURN_REQUESTS, cpu_used)
            finally:
                os.kill(sending, signal.SIGCONT)
    finally:
        worker.stop(15)
        commands.send(None)
        reference_sender.join()
    rates = {name: side["requests"] / side["seconds"] for name, side in (("send", send), ("reference", reference))}
    cpu_ms = {name: side["cpu_seconds"] * 1000 / side["requests"] for name, side in (("send", send),
                                                                                      ("reference", reference))}
    return {"send": {"seconds": round(send["seconds"], 2), "deliveries_per_s": round(rates["send"]),
                     "cpu_ms_per_delivery": round(cpu_ms["send"], 3),
                     "ratio_to_reference": round(rates["send"] / rates["reference"], 2),
                     "cpu_ratio_to_reference": round(cpu_ms["reference"] / cpu_ms["send"], 2)},
            "reference_httpx": {"seconds": round(reference["seconds"], 2), "requests_per_s": round(rates["reference"]),
                                "cpu_ms_per_request": round(cpu_ms["reference"], 3)}}


def _add(side: dict, seconds: float, requests: int, cpu_seconds: float) -> None:
    side["seconds"] += seconds
    side["requests"] += requests
    side["cpu_seconds"] += cpu_seconds


def delivery_pid(loops) -> int:
    """The pid of the delivery process `start_loops` started (once its supervisor has started it)."""
    delivery = next(child for child in loops.children if child.role == "delivery")
    while delivery.child is None:
        time.sleep(0.01)
    return delivery.child.pid


def warm_up(store: Store, space_id: str, url: str, event: str, user: int) -> None:
    """Until one event has gone all the way to the receiver: the loops' processes have started."""
    accept(store, space_id, signed_up(range(user, user + 1), event), "bench")
    deadline = time.monotonic() + 60
    while f"user-{user}" not in received(url)["arrivals"] and time.monotonic() < deadline:
        time.sleep(0.01)


def latency(store: Store, space_id: str, url: str, rate: int, seconds: float, event: str, action: dict) -> dict:
    audience = audiences.create_audience(store, space_id, name=event, audience_type="USERS",
                                         query=f"event('{event}').count() >= 1", options=None)
    runs.run(store, audience.id, reason="initial")
    activate(store, space_id, audience.id, f"{url}/latency/{event}", action, resync=False)
    worker = start_loops(store)
    sent: dict[str, float] = {}
    per_batch = max(1, rate // 10)
    batches = int(seconds * 10)
    offset = 10_000_000 + len(received(url)["arrivals"]) * 10
    try:
        warm_up(store, space_id, url, event, offset - 1)
        started = time.perf_counter()
        for n in range(batches):
            time.sleep(max(0.0, started + n * 0.1 - time.perf_counter()))
            users = range(offset + n * per_batch, offset + (n + 1) * per_batch)
            at = time.time()
            accept(store, space_id, signed_up(users, event), "bench")
            sent.update({f"user-{u}": at for u in users})
        achieved = len(sent) / (time.perf_counter() - started)
        deadline = time.monotonic() + 60
        while not sent.keys() <= received(url)["arrivals"].keys() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop(15)
    arrivals = received(url)["arrivals"]
    latencies = sorted(arrivals[user] - at for user, at in sent.items() if user in arrivals)

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {"events_per_s": round(achieved), "events": len(sent), "missing": len(sent) - len(latencies),
            "latency_ms": {"p50": percentile(0.5), "p95": percentile(0.95), "p99": percentile(0.99),
                           "max": round(latencies[-1] * 1000, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=500, help="events per second for the latency run")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    receiver, url = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/delivery.db")
            space_id = spaces.create_space(store, "Delivery").space.id
            for first in range(0, args.members, 1000):
                accept(store, space_id, signed_up(range(first, min(args.members, first + 1000))), "bench")
            members = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                                query="event('Signed Up').count() >= 1", options=None)
            runs.run(store, members.id, reason="initial")
            recompute.process_dirty(store, limit=args.members)
            single = send_in_turns_with_reference(store, space_id, members.id, f"{url}/single", args.members)
            batched = throughput(store, space_id, members.id, f"{url}/batch", args.members, SEND_BATCH)
            realtime = latency(store, space_id, url, args.rate, args.seconds, "Checked Out", SEND)
            realtime_batched = latency(store, space_id, url, args.rate, args.seconds, "Subscribed", SEND_BATCH)
            store.close()
    finally:
        receiver.terminate()
        receiver.wait()
    figures = {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "members": args.members,
        **single,
        "send_batch_100": batched,
        "realtime_send": realtime,
        "realtime_send_batch_100": realtime_batched,
    }
    publish("delivery", figures)


if __name__ == "__main__":
    main()
