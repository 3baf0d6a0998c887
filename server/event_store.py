"""Resumable streamable HTTP: the events each SSE stream sent, kept in memory so that a client that
lost its stream can reconnect with `Last-Event-ID` and receive what it missed (SEP-1699).

With an event store the SDK opens every SSE stream with a priming event (an id and empty data) and
the `retry` interval clients wait before reconnecting. Only the newest MAX_STREAMS streams and the
last MAX_EVENTS events of each are kept, so memory stays bounded; an id older than that replays
nothing, and the client carries on without the lost events, as it would without a store.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import count

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage

MAX_STREAMS = 64
MAX_EVENTS = 100
RETRY_MS = 1000


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self._ids = count(1)
        self._streams: OrderedDict[StreamId, deque[tuple[int, JSONRPCMessage | None]]] = OrderedDict()
        self._stream_of: dict[int, StreamId] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = next(self._ids)
        events = self._streams.get(stream_id)
        if events is None:
            events = self._streams[stream_id] = deque(maxlen=MAX_EVENTS)
            if len(self._streams) > MAX_STREAMS:
                _, dropped = self._streams.popitem(last=False)
                for old_id, _ in dropped:
                    self._stream_of.pop(old_id, None)
        if len(events) == events.maxlen:
            self._stream_of.pop(events[0][0], None)
        events.append((event_id, message))
        self._stream_of[event_id] = stream_id
        return str(event_id)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        if not last_event_id.isdigit() or int(last_event_id) not in self._stream_of:
            return None
        after = int(last_event_id)
        stream_id = self._stream_of[after]
        for event_id, message in list(self._streams.get(stream_id, ())):
            if event_id > after and message is not None:
                await send_callback(EventMessage(message, str(event_id)))
        return stream_id
