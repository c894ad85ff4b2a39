"""Every error leaves as JSON naming the field: {"detail": str, "errors": [{"field", "message"}]}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("hardcase")

# Raised when the database cannot be reached or drops the connection: the request may succeed later.
DATABASE_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free in time
)
RETRY_AFTER_S = 5


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer of the JSON API."""

    detail: str
    errors: list[ErrorItem]


class ApiError(Exception):
    def __init__(self, status_code: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.field, self.message = status_code, field, message


def error_body(detail: str, errors: list[dict[str, str]]) -> dict:
    return {"detail": detail, "errors": errors}


def _loc_to_field(loc: tuple | list) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")] or list(loc[:1])
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


HEADINGS = {403: "You don't have access to this page", 404: "Not found"}


def wants_page(request: Request) -> bool:
    """A browser navigating to a page (not the JSON API) gets an HTML error page."""
    return (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


def error_page(request: Request, exc: ApiError) -> Response:
    from app.web.templating import render  # the pages module imports this one

    heading = HEADINGS.get(exc.status_code, "Something is wrong with this request")
    return render(request, "error.html", status_code=exc.status_code, heading=heading, message=exc.message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status_code in HEADINGS and wants_page(request):
            return error_page(request, exc)
        return JSONResponse(
            error_body(exc.message, [{"field": exc.field, "message": exc.message}]),
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _loc_to_field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(error_body(detail, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "errors" in exc.detail:
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        detail = str(exc.detail)
        return JSONResponse(
            error_body(detail, [{"field": "request", "message": detail}]),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def _data_error(request: Request, exc: Exception) -> JSONResponse:
        # The edge validation should have caught it; a value the database refuses is still the client's.
        log.warning(
            "database refused a value on %s %s: %s",
            request.method,
            request.url.path,
            getattr(exc, "orig", exc),
        )
        message = "a value does not fit the database (out of range, too long or invalid text)"
        return JSONResponse(error_body(message, [{"field": "body", "message": message}]), status_code=422)

    for exc_class in [sa_exc.DataError, *_driver_data_errors(app.state.engine.dialect.name)]:
        app.add_exception_handler(exc_class, _data_error)

    @app.exception_handler(sa_exc.IntegrityError)
    async def _integrity_error(request: Request, exc: sa_exc.IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        message = "the request conflicts with stored data (a duplicate, or a missing or required value)"
        return JSONResponse(error_body(message, [{"field": "body", "message": message}]), status_code=409)

    for exc_class in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_class, _database_unavailable)
    for exc_class in _driver_unavailable_errors(app.state.engine.dialect.name):
        app.add_exception_handler(exc_class, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "internal error; the server log has the details"
        return JSONResponse(error_body(message, [{"field": "server", "message": message}]), status_code=500)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    message = f"the database is unavailable; retry in {RETRY_AFTER_S} s"
    return JSONResponse(
        error_body(message, [{"field": "database", "message": message}]),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _driver_data_errors(dialect: str) -> list[type[Exception]]:
    """The driver's own "value refused" errors, raised by statements run on the driver's cursor (the lease)."""
    if dialect != "postgresql":
        return []
    import psycopg

    return [psycopg.DataError]


def _driver_unavailable_errors(dialect: str) -> list[type[Exception]]:
    """The driver's own connection errors, for code that talks to the driver without SQLAlchemy. Only the
    PostgreSQL driver is imported only where the app runs on PostgreSQL: a SQLite deployment never loads psycopg
    (and its libpq, ~9 MB of the idle process)."""
    import sqlite3

    if dialect != "postgresql":
        return [sqlite3.OperationalError]
    import psycopg

    return [psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError]
