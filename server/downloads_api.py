"""`GET /downloads/{token}/{name}`: the CSV files `create_download` writes, streamed from disk while
their token is valid."""

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from store.compute import downloads
from store.db.store import Store


def routes(store: Store) -> list[Route]:
    async def download(request: Request) -> Response:
        path = downloads.find_file(store, request.path_params["token"])
        if path is None:
            return JSONResponse({"errors": [{"type": "not-found", "message": "This download link is unknown or has "
                                             "expired; call segment_audiences_create_download again."}]},
                                status_code=404)
        return FileResponse(path, media_type="text/csv", filename=request.path_params["name"])

    return [Route("/downloads/{token}/{name}", download, methods=["GET"])]
