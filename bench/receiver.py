"""A destination stand-in for the delivery benchmark: counts every event it is sent (a JSON object or
an array of them) and, for paths under /latency, records when each userId arrived. `GET /stats`
answers {"count", "arrivals"}. Runs in its own process: python bench/receiver.py PORT"""

import sys
import time

import orjson
import uvicorn

state = {"count": 0, "arrivals": {}}


async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stats":
        answer = orjson.dumps(state)
    else:
        events = orjson.loads(body)
        events = events if isinstance(events, list) else [events]
        state["count"] += len(events)
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
