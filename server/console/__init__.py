"""The console: server-rendered pages for people, on the HTTP server of the Tracking API, under
`/console`. Each page reads what the insight and catalog tools read, so its numbers are theirs:
spaces; a space's audiences, computed traits, destinations (delivery health), alerts and priority
lists, with an overlap matrix and a backtest of a typed definition; an audience's or computed
trait's size history, runs with their timings, definition with `explain`, consumers and connections;
a destination's delivery per hour with its last error (secrets masked when stored) and a redrive
of its dead letters.

Who may see it: with a token (`--token`, as the MCP HTTP transports), a request must bring it, as
`Authorization: Bearer <token>` or as the cookie that visiting `/console?token=<token>` sets; without
one, only on a loopback address and only by a loopback host name (no DNS rebinding). The one form
that changes anything (redrive) is refused from another origin.
"""

from __future__ import annotations

import hmac

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from backend.clock import iso_ms
from server.console import pages
from server.console.charts import Series, line_chart
from store.db.errors import DomainError, NotFound
from store.db.store import Store

COOKIE = "segment_audiences_console"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TEMPLATES = Environment(loader=PackageLoader("server.console", "templates"), autoescape=select_autoescape())
TEMPLATES.filters["moment"] = lambda millis: "" if millis is None else iso_ms(millis)[:19].replace("T", " ")


def routes(store: Store, token: str | None, loopback: bool) -> list[Route]:
    def page(build):
        async def endpoint(request: Request) -> Response:
            refused = _refusal(request, token, loopback)
            if refused is not None:
                return refused
            if token and request.query_params.get("token") == token:
                response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return response
            try:
                return await build(request)
            except NotFound as error:
                return _render("error.html", {"message": str(error)}, status=404)
            except DomainError as error:
                return _render("error.html", {"message": str(error)}, status=400)
        return endpoint

    async def spaces_page(request: Request) -> Response:
        return _render("spaces.html", {"spaces": pages.spaces(store)})

    async def space_page(request: Request) -> Response:
        return _render("space.html", pages.space(store, request.path_params["space"]))

    async def computation_page(request: Request) -> Response:
        found = pages.computation(store, request.path_params["space"], request.path_params["id"],
                                  days=_days(request, 30))
        history = found["history"]
        chart = line_chart([iso_ms(b.start_ms)[:10] for b in history.buckets],
                           [Series("size", [b.size for b in history.buckets]),
                            Series("entered", [b.entered for b in history.buckets]),
                            Series("exited", [b.exited for b in history.buckets])], title="Size history")
        return _render("computation.html", {**found, "chart": chart})

    async def destination_page(request: Request) -> Response:
        found = pages.destination(store, request.path_params["space"], request.path_params["id"])
        hours = found["hours"]
        chart = line_chart([iso_ms(h.start_ms)[11:16] for h in hours],
                           [Series("delivered", [h.delivered for h in hours]),
                            Series("retrying", [h.retrying for h in hours]),
                            Series("dead-lettered", [h.dead for h in hours])], title="Delivery per hour")
        return _render("destination.html", {**found, "chart": chart, "redriven": request.query_params.get("redriven")})

    async def redrive(request: Request) -> Response:
        if not _same_origin(request):
            return _render("error.html", {"message": "A redrive must come from the console's own page."}, status=403)
        space_id, destination_id = request.path_params["space"], request.path_params["id"]
        count = pages.redrive(store, space_id, destination_id)
        return RedirectResponse(f"/console/spaces/{space_id}/destinations/{destination_id}?redriven={count}",
                                status_code=303)

    async def overlap_page(request: Request) -> Response:
        space_id = request.path_params["space"]
        return _render("overlap.html", pages.overlap(store, space_id, request.query_params.getlist("ids")))

    async def backtest_page(request: Request) -> Response:
        space_id = request.path_params["space"]
        query = request.query_params.get("query", "")
        audience_type = request.query_params.get("audienceType", "USERS")
        days = _days(request, 14)
        found = pages.backtest(store, space_id, audience_type, query, days) if query else None
        chart = None if found is None else line_chart([d.day for d in found.days],
                                                      [Series("size", [d.size for d in found.days])], title="Backtest")
        return _render("backtest.html", {"space_id": space_id, "query": query, "audience_type": audience_type,
                                         "days": days, "backtest": found, "chart": chart})

    return [
        Route("/console", page(spaces_page), methods=["GET"]),
        Route("/console/spaces/{space}", page(space_page), methods=["GET"]),
        Route("/console/spaces/{space}/computations/{id}", page(computation_page), methods=["GET"]),
        Route("/console/spaces/{space}/destinations/{id}", page(destination_page), methods=["GET"]),
        Route("/console/spaces/{space}/destinations/{id}/redrive", page(redrive), methods=["POST"]),
        Route("/console/spaces/{space}/overlap", page(overlap_page), methods=["GET"]),
        Route("/console/spaces/{space}/backtest", page(backtest_page), methods=["GET"]),
    ]


def _render(name: str, context: dict, status: int = 200) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


def _refusal(request: Request, token: str | None, loopback: bool) -> Response | None:
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ") or request.cookies.get(COOKIE, "")
        if hmac.compare_digest(given.encode(), token.encode()) or request.query_params.get("token") == token:
            return None
        return _render("error.html", {"message": "Open /console?token=<the server's --token> once, or send "
                                                 "Authorization: Bearer <token>."}, status=401)
    if not loopback:
        return _render("error.html", {"message": "The console is off on a non-loopback address without a token: "
                                                 "start the server with --token."}, status=403)
    if request.url.hostname not in {name.strip("[]") for name in LOOPBACK_NAMES}:
        return _render("error.html", {"message": "Open the console by a loopback address (127.0.0.1 or localhost)."},
                       status=403)
    return None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _days(request: Request, default: int) -> int:
    try:
        return min(max(int(request.query_params.get("days", default)), 1), 90)
    except ValueError:
        return default

