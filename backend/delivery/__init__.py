"""Delivery: destination adapters (Segment events → HTTP requests), the retry policy, rate limits,
and the sender that makes the requests with one shared `httpx.AsyncClient`."""
