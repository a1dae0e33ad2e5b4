"""Service defaults for every FastAPI app: problem+json, body limit, metrics, traces, health."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import StatusCode, format_trace_id
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from eventkit.domain import DomainError
from eventkit.problems import PROBLEM_JSON, Problem, problem_of
from eventkit.published_schemas import schema_router
from eventkit.settings import KernelSettings
from eventkit.telemetry import HTTP_REQUEST_SECONDS, setup_telemetry

__all__ = ["JSONUTF8Response", "ProblemResponse", "create_app", "problem_response"]

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[dict[str, bool]]]

_OPS_PATHS = ("/metrics", "/healthz", "/readyz")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class JSONUTF8Response(JSONResponse):
    """JSON rendered as UTF-8 with Chinese text left readable rather than \\u-escaped."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


class ProblemResponse(JSONUTF8Response):
    media_type = PROBLEM_JSON


def problem_response(problem: Problem, instance: str | None) -> JSONResponse:
    """The RFC 9457 answer for `problem`, with `instance` set to the request path."""
    return ProblemResponse(
        problem.to_dict(instance), status_code=problem.status, headers=dict(problem.headers) or None
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(
    service_name: str,
    settings: KernelSettings,
    *,
    title: str,
    version: str,
    lifespan: Lifespan[FastAPI] | None = None,
    readiness: Readiness | None = None,
) -> FastAPI:
    """A FastAPI app with the platform's error format, limits, telemetry and health endpoints."""
    setup_telemetry(service_name, settings)
    app = FastAPI(
        title=title, version=version, lifespan=lifespan, default_response_class=JSONUTF8Response
    )
    _add_exception_handlers(app)
    # add_middleware puts the last one outermost: metrics time everything, including 413s and 500s.
    app.add_middleware(_BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(_NulByteMiddleware)
    app.add_middleware(_UnhandledErrorMiddleware)
    app.add_middleware(_MetricsMiddleware, service=service_name, routes=app.router.routes)
    # Outermost: everything inside sees the citizen's address, taken from X-Forwarded-For
    # only when the connection comes from a trusted proxy (FORWARDED_ALLOW_IPS).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    _add_ops_routes(app, readiness)
    app.include_router(schema_router())
    # One server span per request; a span per ASGI receive and send message as well tripled
    # the tracing CPU on every write and told nothing the server span does not.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=",".join(f"{p}$" for p in _OPS_PATHS),
        exclude_spans=["receive", "send"],
    )
    _document_problems(app)
    return app


def _add_exception_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem_response(problem_of(exc), request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            reason = bad_json.get("ctx", {}).get("error", "invalid JSON")
            where = bad_json["loc"][-1]
            detail = f"{reason} at character {where}" if isinstance(where, int) else reason
            return problem_response(
                Problem(400, "Malformed JSON", detail, type_="urn:jingmin:problem:malformed-json"),
                request.url.path,
            )
        problem = Problem(
            422,
            "Unprocessable Content",
            "The request does not match the expected schema.",
            type_="urn:jingmin:problem:invalid",
            errors=[_clear_error(e) for e in errors],
        )
        return problem_response(problem, request.url.path)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = _phrase(exc.status_code)
        detail = exc.detail if exc.detail and exc.detail != title else None
        response = problem_response(Problem(exc.status_code, title, detail), request.url.path)
        # Keeps headers such as Allow on a 405.
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)


def _clear_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as loc/msg/type; the offending input is never echoed back."""
    loc = list(error.get("loc", ()))
    msg = str(error.get("msg", "invalid value"))
    if error.get("type") == "extra_forbidden" and loc:
        msg = f"Unknown field '{loc[-1]}'"
    elif error.get("type") == "missing" and loc:
        msg = f"Field '{loc[-1]}' is required"
    return {"loc": loc, "msg": msg, "type": error.get("type", "value_error")}


def _add_ops_routes(app: FastAPI, readiness: Readiness | None) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        try:
            checks = await readiness() if readiness else {}
        except Exception:
            log.exception("readiness check raised")
            checks = {"readiness": False}
        failing = sorted(name for name, ok in checks.items() if not ok)
        if failing:
            problem = Problem(
                503,
                "Service Unavailable",
                f"Not ready: {', '.join(failing)}",
                type_="urn:jingmin:problem:not-ready",
                checks=checks,
                failing=failing,
            )
            return problem_response(problem, request.url.path)
        return JSONUTF8Response({"status": "ok", "checks": checks})


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers really send for a 422."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problem"] = {
            "type": "object",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
            "additionalProperties": True,
        }
        _document_kernel_problems(app, schema, problem_ref)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# What the kernel itself answers, whatever the route: a body that is not JSON, a bad
# Idempotency-Key or X-Correlation-Id (400), a body over MAX_BODY_BYTES (413), and for routes
# behind a bearer token a missing or invalid one (401) or a caller it does not allow (403).
_KERNEL_PROBLEMS = {
    "400": "Malformed JSON, or a bad Idempotency-Key or X-Correlation-Id.",
    "401": "Missing, expired or invalid bearer token.",
    "403": "The token's roles or scope do not allow this.",
    "413": "The request body is too large.",
}


def _uses_bearer(route: BaseRoute) -> bool:
    from eventkit.auth import current_principal

    def bearer(call: Any) -> bool:
        # `require_principal(...)` builds its dependency per use; it authenticates the same way.
        qualname = getattr(call, "__qualname__", "")
        return call is current_principal or qualname.startswith("require_principal.")

    def walk(dependant: Any) -> bool:
        return any(bearer(d.call) or walk(d) for d in getattr(dependant, "dependencies", ()))

    return walk(getattr(route, "dependant", None))


def _document_kernel_problems(
    app: FastAPI, schema: dict[str, Any], problem_ref: dict[str, str]
) -> None:
    """Document the kernel's own problem responses and the bearer scheme (additive: a route's
    own description of a status wins)."""
    secured = {
        (getattr(r, "path", ""), m.lower())
        for r in app.routes
        for m in getattr(r, "methods", ()) or ()
        if _uses_bearer(r)
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            header_names = {
                p.get("name", "").lower()
                for p in operation.get("parameters", [])
                if p.get("in") == "header"
            }
            wanted = []
            if "requestBody" in operation or "idempotency-key" in header_names:
                wanted.append("400")
            if "requestBody" in operation:
                wanted.append("413")
            # A route that checks the token itself (to audit refusals) documents its 401.
            if (path, method) in secured or "401" in responses:
                secured.add((path, method))
                wanted += ["401", "403"]
                operation.setdefault("security", [{"bearer": []}])
            for status in wanted:
                entry = responses.setdefault(status, {"description": _KERNEL_PROBLEMS[status]})
                if not entry.get("description"):
                    entry["description"] = _KERNEL_PROBLEMS[status]
                entry.setdefault("content", {PROBLEM_JSON: {"schema": problem_ref}})
    if secured:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})


async def _send_problem(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    await problem_response(problem, scope.get("path"))(scope, receive, send)


class _BodyLimitMiddleware:
    """Reads the whole body up front so chunked uploads are held to the limit too.

    Buffering is cheap at a 64 KiB limit, and it answers 413 before any handler runs,
    whichever way the handler would have read the body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> Problem:
        return Problem(
            413,
            "Content Too Large",
            f"The request body exceeds {self.max_bytes} bytes.",
            type_="urn:jingmin:problem:too-large",
            max_bytes=self.max_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_problem(self._too_large(), scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _send_problem(self._too_large(), scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _NulByteMiddleware:
    """Refuses a NUL character in the path or query string before any handler sees it.

    PostgreSQL text cannot hold NUL, so a query parameter without a pattern (an item id, a
    source reference) that reached SQL with one was a 500 (found by schemathesis, issue 6).
    Bodies are covered by the request models (`eventkit.schemas` refuses control characters).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"")
            or b"\x00" in scope.get("query_string", b"")
            or "\x00" in scope.get("path", "")
        ):
            problem = Problem(
                400,
                "NUL character",
                "The path or query string contains a NUL character (%00).",
                type_="urn:jingmin:problem:nul-character",
            )
            await _send_problem(problem, scope, receive, send)
            return
        await self.app(scope, receive, send)


class _UnhandledErrorMiddleware:
    """Turns an escaped exception into a 500 problem, logged here inside the request's span.

    Starlette's own handler would also re-raise to the server, logging the error twice and
    outside the trace.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Problem as problem:
            if started:
                raise
            await _send_problem(problem, scope, receive, send)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            if started:
                raise
            ctx = span.get_span_context()
            extensions = {"trace_id": format_trace_id(ctx.trace_id)} if ctx.is_valid else {}
            internal = Problem(
                500,
                "Internal Server Error",
                "The server could not complete the request.",
                type_="urn:jingmin:problem:internal",
                **extensions,
            )
            await _send_problem(internal, scope, receive, send)


class _MetricsMiddleware:
    """Observes request latency labelled by route template, so label cardinality stays bounded."""

    def __init__(self, app: ASGIApp, service: str, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.service = service
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_REQUEST_SECONDS.labels(
                self.service, method, self._route(scope), str(status)
            ).observe(time.perf_counter() - start)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        # Requests answered before routing (a 413, say) still belong to a route template.
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match != Match.NONE and hasattr(candidate, "path"):
                return str(candidate.path)
        return "unmatched"
