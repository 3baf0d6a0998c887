"""A destination stand-in for the delivery benchmarks: counts every event it is sent (a JSON object or
an array of them) and, for paths under /latency, records when each userId arrived. `GET /stats`
answers {"count", "arrivals", "duplicates"} (events whose messageId had arrived before). Misbehaving neighbours for bench/isolation.py: under /drip the answer
trickles out one byte every 3 seconds; under /busy it is 429 with Retry-After: 40.
Runs in its own process: python bench/receiver.py PORT"""

import asyncio
import sys
import time

import orjson
import uvicorn

state = {"count": 0, "arrivals": {}, "duplicates": 0}
seen: set[str] = set()


async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].startswith("/busy"):
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"retry-after", b"40"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    if scope["path"].startswith("/drip"):
        answer = b'{"slowly": true}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        for index in range(len(answer)):
            await asyncio.sleep(3)
            await send({"type": "http.response.body", "body": answer[index:index + 1], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stats":
        answer = orjson.dumps(state)
    else:
        events = orjson.loads(body)
        events = events if isinstance(events, list) else [events]
        state["count"] += len(events)
        for event in events:
            message_id = event.get("messageId")
            state["duplicates"] += message_id in seen
            seen.add(message_id)
        if scope["path"].startswith("/latency"):
            now = time.time()
            for event in events:
                state["arrivals"].setdefault(event["userId"], now)
        answer = b"{}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off", access_log=False)
