"""Progress for tool calls that wait (a forced run, a download): while the work runs, the client gets
an MCP progress notification at once and then every PROGRESS_SECONDS, with the seconds spent so far
as the progress value (the total is unknown) and a message saying what is being waited for. Clients
that send no progress token get nothing: the session drops the notifications.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import Context

PROGRESS_SECONDS = 1.0
WAITING = {
    "segment_audiences_force_execute_audience_run": "Recomputing audience {audienceId}",
    "segment_audiences_create_download": "Exporting {collectionId} at {hour}",
}


async def reporting(name: str, arguments: dict[str, Any], context: Context | None,
                    work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work`, reporting progress while it runs if the tool `name` is one that waits (and the
    call came in a request that can carry progress)."""
    label = WAITING.get(name)
    if label is None or context is None:
        return await work()
    what = label.format_map({key: arguments.get(key, "?") for key in ("audienceId", "collectionId", "hour")})
    started = anyio.current_time()

    async def beat() -> None:
        while True:
            spent = anyio.current_time() - started
            await context.report_progress(round(spent, 1), None, f"{what}: {spent:.0f} s so far")
            await anyio.sleep(PROGRESS_SECONDS)

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(beat)
        try:
            result = await work()
        except Exception as error:  # re-raised as itself below, not wrapped in the task group's ExceptionGroup
            failure = error
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    spent = anyio.current_time() - started
    await context.report_progress(round(spent, 1) + 0.1, None, f"{what}: done after {spent:.1f} s")
    return result
