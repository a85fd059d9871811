"""Errors as JSON with a one-line ``message`` (see :class:`~infersave.service.schemas.ErrorBody`):
422 for bad input (pydantic's errors naming the field, or the solver's InputError), 413 and 429
for the limits, 500 (logged) for anything unexpected. The server never goes down for a request.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from infersave import InputError
from infersave.service.jobs import TooManyJobs
from infersave.service.responses import SafeJSONResponse

log = logging.getLogger("infersave.service")


class TooLarge(Exception):
    """A body, job or comparison over the limits (answered 413)."""


class Busy(Exception):
    """Too many requests or jobs at once (answered 429)."""


def error(status: int, message: str, detail: Any = None, **headers: str) -> SafeJSONResponse:
    """An error response: ``{"detail": detail or message, "message": message}``."""
    body = {"detail": message if detail is None else detail, "message": message}
    return SafeJSONResponse(body, status_code=status, headers=headers or None)


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) and len(str(value)) < 200 else None


def validation_detail(errors: Any) -> tuple[list[dict[str, Any]], str]:
    """Pydantic's errors without echoing large inputs, and one line naming the first field."""
    detail = [
        {
            "type": e.get("type", "value_error"),
            "loc": list(e.get("loc", ())),
            "msg": e.get("msg", ""),
            "input": _scalar(e.get("input")),
        }
        for e in errors
    ]
    if not detail:
        return detail, "invalid request"
    first = detail[0]
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    got = f" (got {first['input']!r})" if first["input"] is not None else ""
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return detail, f"{where}: {first['msg']}{got}{more}"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        detail, message = validation_detail(exc.errors())
        return error(422, message, detail)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> SafeJSONResponse:
        return error(422, str(exc).splitlines()[0] if str(exc) else "invalid input")

    @app.exception_handler(TooLarge)
    async def _large(request: Request, exc: TooLarge) -> SafeJSONResponse:
        return error(413, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> SafeJSONResponse:
        return error(429, str(exc), **{"Retry-After": "1"})

    @app.exception_handler(TooManyJobs)
    async def _jobs(request: Request, exc: TooManyJobs) -> SafeJSONResponse:
        return error(429, str(exc), **{"Retry-After": "5"})

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> SafeJSONResponse:
        return error(exc.status_code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> SafeJSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        line = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return error(500, f"internal error: {line}")
