"""The ASGI application: the REST API, the OpenLineage receiver and the web UI around one
``DBAPI``, with errors as ``{"detail": ...}`` (an HTML page for the UI) and writes guarded
by a token.

Security: the server is read-only unless it was given a token: then a write (a DELETE)
needs ``Authorization: Bearer <token>`` (401 without it, 403 with another); without a token
writes are refused (403). The OpenLineage receiver is open (the server binds 127.0.0.1 by
default) unless given its own token (``lineage_token``; the server's token is taken too).
"""

from __future__ import annotations

import contextlib
import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from provwh.core.serialize import loads_exact
from provwh.serve import api, api_cards, api_objects, docs, records, streams, ui
from provwh.serve.notify import Hub
from provwh.serve.receiver import Receiver, events_of
from provwh.serve.records import BadRequest, NotFound
from provwh.version import __version__


class Refused(Exception):
    """A write without the right token (401 or 403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization") or ""
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _matches(given: str | None, *tokens: str | None) -> bool:
    if given is None:
        return False
    return any(t and hmac.compare_digest(given.encode(), t.encode()) for t in tokens)


def create_app(
    db: Any,
    token: str | None = None,
    lineage_token: str | None = None,
    lineage_targets: list[Any] | None = None,
) -> FastAPI:
    """The application over ``db`` (a ``DBAPI``); ``lineage_targets``: the warehouse targets
    the receiver loads into (none: it answers 503)."""
    receiver = Receiver(db, lineage_targets) if lineage_targets else None
    hub = Hub(_listen_conninfo(db))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await hub.start()
        yield
        await hub.close()
        if receiver is not None:
            receiver.close()
        db.close()

    app = FastAPI(
        title="provwh",
        version=__version__,
        description="Provenance warehouse REST API (Flowcept 1.0.3's contract under /api/v1),"
        " an OpenLineage receiver and a web UI.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.token = token
    app.state.lineage_token = lineage_token
    app.state.hub = hub  # wakes the live streams; the server stops them (server.run)

    def check_write(request: Request) -> None:
        if not token:
            raise Refused(
                403, "this server is read-only: start it with --token (or PROVWH_SERVE_TOKEN)"
                " to allow writes"
            )  # fmt: skip
        given = _bearer(request)
        if given is None:
            raise Refused(401, "a write needs the server's token: Authorization: Bearer <token>")
        if not _matches(given, token):
            raise Refused(403, "wrong token")

    app.state.check_write = check_write
    routers = (api.router, api_objects.router, api_cards.router, streams.router, docs.router)
    for router in (*routers, ui.router):
        app.include_router(router)

    @app.post("/api/v1/lineage", tags=["lineage"], openapi_extra=_LINEAGE_BODY)
    async def lineage(request: Request) -> Response:
        """OpenLineage run events: one event (the path and body OpenLineage clients send),
        ``{"events": [...]}`` or a JSON array (gzip-encoded too). Each event loads once, by
        its content; the answer counts the events loaded and those loaded before."""
        if lineage_token:
            given = _bearer(request)
            if given is None:
                raise Refused(401, "the lineage receiver needs its token: Authorization: Bearer")
            if not _matches(given, lineage_token, token):
                raise Refused(403, "wrong token")
        if receiver is None:
            raise HTTPException(503, "this server has no database to receive lineage into")
        events = events_of(_json_body(await request.body(), request.headers))
        result = await run_in_threadpool(receiver.receive, events)
        if result.get("loaded"):
            hub.wake()  # DuckDB's streams too, which hear no NOTIFY
        return api.json(result)

    _error_handlers(app)
    return app


def _listen_conninfo(db: Any) -> str | None:
    """Where the streams LISTEN for the loader's notifications: the PostgreSQL database the
    server reads (None on DuckDB, whose streams poll)."""
    target = getattr(db.backend, "target", None)
    return getattr(target, "conninfo", None) if db.engine == "postgresql" else None


_LINEAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": 'an OpenLineage run event, {"events": [...]}, or an array',
                    "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
                }
            }
        },
    }
}
MAX_BODY = 64 << 20  # bytes of a lineage request, decompressed


def _json_body(raw: bytes, headers: Any) -> Any:
    """A request's JSON (gzip-decoded when its Content-Encoding says so), else BadRequest."""
    import gzip
    import zlib

    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding == "gzip":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = d.decompress(raw, MAX_BODY)
            if d.unconsumed_tail:
                raise BadRequest(f"the body is over {MAX_BODY >> 20} MiB")
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise BadRequest(f"the body is not gzip: {exc}") from None
    elif encoding not in ("", "identity"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY >> 20} MiB")
    if not raw.strip():
        raise BadRequest("the body is empty: send an OpenLineage run event as JSON")
    try:
        return loads_exact(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path == "/openapi.json" or path.startswith("/static"))


def _error(request: Request, status: int, detail: Any, headers: Any = None) -> Response:
    if _wants_html(request) and isinstance(detail, str):
        resp = ui.error_page(status, detail, request.app.state.db.backend.name)
        return resp
    return Response(
        records.json_bytes({"detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        msg = err.get("msg", "invalid")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def _error_handlers(app: FastAPI) -> None:
    from provwh.query.backends import DatabaseLocked
    from provwh.query.guard import ReadOnlyError

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 400, _validation_detail(exc))

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(request, exc.status, exc.detail, headers)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(ReadOnlyError)
    async def read_only(request: Request, exc: ReadOnlyError) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(DatabaseLocked)
    async def locked(request: Request, exc: DatabaseLocked) -> Response:
        return _error(request, 503, str(exc), {"Retry-After": "2"})

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc) or type(exc).__name__)

    for kind in (BadRequest, ValueError, NotImplementedError):
        app.add_exception_handler(kind, bad_request)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        # the traceback goes to the server's log (uvicorn logs the error after this answer)
        return _error(request, 500, f"internal error ({type(exc).__name__}); see the server's log")
