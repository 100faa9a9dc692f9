"""Errors as RFC 9457 problem+json: the one place where domain errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from eauth.errors import EauthError, ErrorKind, InvalidToken
from store.db import database_error

log = logging.getLogger("eauth.api")

PROBLEM_TYPE_BASE = "https://eauth.example/problems/"
MEDIA_TYPE = "application/problem+json"

STATUS = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.CONFIGURATION: 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def problem(status: int, code: str, title: str, detail: str, *, bearer: bool = False, **extra) -> JSONResponse:
    """The problem response; ``bearer`` marks a 401 for a bad bearer token (an access or a login token).
    A 401 asks for Basic credentials only when the client's own were refused (the token endpoint): a
    failed certificate login answers with the scheme that gets a login token, and never with Basic,
    which makes a browser open a password dialog over the web page."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = ('Bearer error="invalid_token"' if bearer
                                       else 'Basic realm="eauth"' if code == "invalid_client"
                                       else 'Bearer realm="eauth"')
    if code == "insufficient_scope":
        headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
    if status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into problem+json."""

    @app.exception_handler(EauthError)
    async def domain_error(request: Request, exc: EauthError) -> JSONResponse:
        return problem(STATUS[exc.kind], exc.code, exc.title, exc.detail, bearer=isinstance(exc, InvalidToken),
                       instance=request.url.path, **exc.extra)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def database_failure(request: Request, exc: Exception) -> JSONResponse:
        """A database error that escaped ``Database.session``/``transaction`` (a bare ``engine.connect``):
        an unreachable or restarting server is 503 with Retry-After like any UNAVAILABLE error."""
        mapped = database_error(exc)
        if mapped is None:
            return await unexpected(request, exc)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, mapped.detail)
        return await domain_error(request, mapped)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"location": "body", "message": "invalid"}
        detail = f"{first['location']}: {first['message']}"
        return problem(422, "invalid_request", "Request does not match the schema", detail,
                       instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal", "Internal error", "an unexpected error occurred; it has been logged",
                       instance=request.url.path)
