"""The reference relay as an ASGI app: every dialect under its prefix, errors in each dialect's shape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay_integrations.server import routes_coop, routes_phonerelay, routes_relaysms, routes_smsgate, sim
from relay_integrations.server.bounds import MAX_JSON_DEPTH, depth_violation
from relay_integrations.server.common import ApiError
from relay_integrations.server.config import DIALECTS, ServerConfig
from relay_integrations.server.context import RelayContext
from relay_integrations.server.delivery import DeliveryWorker
from relay_integrations.server.errors import error_response
from relay_integrations.server.openapi import document_errors
from relay_integrations.server.outbox import WebhookDispatcher

log = logging.getLogger("relay_integrations.server")

_ROUTERS = {
    "phonerelay": routes_phonerelay.build_router,
    "relaysms": routes_relaysms.build_router,
    "coop": routes_coop.build_router,
    "smsgate": routes_smsgate.build_router,
}
_BATCH_PATH_SUFFIXES = ("/sms/batch", "/messages/bulk")
# Open without credentials: health checks and the relaysms webhook test bins (POST side).
_PUBLIC_PATH_SUFFIXES = ("/health", "/health/live", "/health/ready", "/health/startup", "/status/bin",
                         "/messages/bin")
MAX_BIN_BODY_BYTES = 64 * 1024
"""Largest test-bin post: the bins take unauthenticated writes, as the doc has them."""


class BodyLimitMiddleware:
    """Bounds every request body at the edge: 413 over the size limit (announced or streamed), 400
    naming the field when the JSON nests too deep for the parser (see :mod:`.bounds`).

    The body is read here, at most ``limit`` bytes, and replayed to the app.
    """

    def __init__(self, app: ASGIApp, *, limit: int, batch_limit: int,
                 dialect_of_path: Callable[[str], str | None]) -> None:
        self.app = app
        self.limit = limit
        self.batch_limit = batch_limit
        self.dialect_of_path = dialect_of_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if not any(name == b"content-type" for name, _ in scope["headers"]):
            # curl -d without -H sends no type; every endpoint here takes JSON, so read it as JSON.
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        path: str = scope["path"]
        limit = self.batch_limit if path.rstrip("/").endswith(_BATCH_PATH_SUFFIXES) else self.limit
        if path.rstrip("/").endswith("/bin"):
            limit = min(limit, MAX_BIN_BODY_BYTES)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send, limit)
                    return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await self._reject(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        field = depth_violation(body)
        if field is not None:
            err = ApiError(400, f"{field}: nested deeper than {MAX_JSON_DEPTH} levels", field=field)
            await error_response(self.dialect_of_path(path), err)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        err = ApiError(413, f"body: request body larger than {limit} bytes", field="body")
        response = error_response(self.dialect_of_path(scope["path"]), err)
        await response(scope, receive, send)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or (str(loc[0]) if loc else "body")


def create_app(
    db_path: str = ":memory:",
    api_key: str = "dev-key",
    login: str = "relay",
    delivery_latency: float = 1.0,
    failure_rate: float = 0.0,
    webhook_secret: str | None = None,
    numbers: Sequence[str] | None = None,
    dialect: str | None = None,
    webhook_urls: Mapping[str, str] | None = None,
    *,
    config: ServerConfig | None = None,
    **options: Any,
) -> FastAPI:
    """Build a reference relay app. Background delivery and webhooks run while the app's lifespan runs.

    :param db_path: SQLite file or ``:memory:``.
    :param api_key: key every dialect accepts.
    :param login: smsgate Basic-auth login.
    :param delivery_latency: seconds from acceptance to the final state.
    :param failure_rate: fraction of messages that fail (seeded by message id).
    :param webhook_secret: master secret of outgoing webhooks (each dialect signs with its own derived
        secret; relaysms only with ``webhook_secrets={"relaysms": "whsec_..."}``, see :class:`ServerConfig`).
    :param numbers: relaysms owned numbers.
    :param dialect: also serve this dialect at the root.
    :param webhook_urls: dialect -> URL receiving all that dialect's webhooks.
    :param config: a complete :class:`ServerConfig` instead of the arguments above.
    :param options: further :class:`ServerConfig` fields (``synchronous``, ``balance``, ...).
    """
    if config is None:
        config = ServerConfig(
            db_path=str(db_path), api_key=api_key, login=login, delivery_latency=delivery_latency,
            failure_rate=failure_rate, webhook_secret=webhook_secret,
            numbers=list(numbers) if numbers else ServerConfig().numbers, dialect=dialect,
            webhook_urls=dict(webhook_urls or {}), **options,
        )
    ctx = RelayContext(config)
    worker = DeliveryWorker(ctx)
    dispatcher = WebhookDispatcher(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        task = asyncio.create_task(dispatcher.run(), name="relay-webhooks")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            worker.stop()
            ctx.store.close()

    app = FastAPI(
        title="relay-integrations reference relay",
        description="phonerelay, relaysms, coop and smsgate APIs on one server, with simulated delivery.",
        version="1",
        lifespan=lifespan,
    )
    app.state.relay = ctx
    endpoint_dialect: dict[Any, str] = {}

    # (path regex, path template, methods) of every route, for the Allow header of a 405. Kept here
    # rather than read back from app.router: FastAPI 0.14x+ keeps included routers as lazy
    # entries whose routes are not listed there.
    route_table: list[tuple[re.Pattern[str], str, frozenset[str]]] = []

    def include(router: Any, prefix: str = "") -> None:
        app.include_router(router, prefix=prefix)
        for route in router.routes:
            methods = getattr(route, "methods", None)
            if methods:
                template = prefix + route.path
                route_table.append((compile_path(template)[0], template, frozenset(methods)))

    for name, build in _ROUTERS.items():
        router = build(ctx)
        for route in router.routes:
            endpoint_dialect[getattr(route, "endpoint", None)] = name
        include(router, f"/{name}")
        if config.dialect == name:
            include(router)
    if config.sim:
        include(sim.build_router(ctx))

    def dialect_of_path(path: str) -> str | None:
        first = path.lstrip("/").split("/", 1)[0]
        if first in DIALECTS:
            return first
        if first == "_sim" or path in ("/health", "/docs", "/openapi.json"):
            return None
        return config.dialect

    def dialect_of(request: Request) -> str | None:
        endpoint = request.scope.get("endpoint")
        if endpoint is not None and endpoint in endpoint_dialect:
            return endpoint_dialect[endpoint]
        return dialect_of_path(request.url.path)

    @app.get("/health", tags=["relay"], summary="Liveness (no auth)")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "dialects": list(DIALECTS), "root_dialect": config.dialect,
                             "database": "memory" if config.db_path == ":memory:" else "sqlite-wal"})

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(dialect_of(request), exc)

    def auth_failure(request: Request, dialect: str | None) -> ApiError | None:
        """Bodies are parsed before handlers run; a request without valid credentials must still get 401."""
        path = request.url.path.rstrip("/")
        if path.endswith(_PUBLIC_PATH_SUFFIXES) or path in ("/health", ""):
            return None
        try:
            ctx.authenticate(dialect, request)
        except ApiError as err:
            return err
        return None

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        dialect = dialect_of(request)
        denied = auth_failure(request, dialect)
        if denied is not None:
            return error_response(dialect, denied)
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            err = ApiError(400, "body: malformed JSON", field="body")
        else:
            field = _field_of(first.get("loc", ()))
            msg = str(first.get("msg", "invalid"))
            if first.get("type") == "missing":
                msg = "is required"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            err = ApiError(400, f"{field}: {msg}{more}", field=field)
        return error_response(dialect, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if isinstance(cause, ApiError):
            return error_response(dialect_of(request), cause)
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 400:
            denied = auth_failure(request, dialect_of(request))
            if denied is not None:
                return error_response(dialect_of(request), denied)
            message = "body: could not be parsed"
        response = error_response(dialect_of(request), ApiError(exc.status_code, message))
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list every one of them.
            response.headers["Allow"] = ", ".join(allowed_methods(request.scope))
        return response

    def allowed_methods(scope: Scope) -> list[str]:
        """Methods of the most specific routes matching the path (``/sms/send`` over ``/sms/{id}``)."""
        by_template: dict[str, set[str]] = {}
        for regex, template, route_methods in route_table:
            if regex.match(scope["path"]):
                by_template.setdefault(template, set()).update(route_methods)
        if not by_template:
            return []
        fewest = min(t.count("{") for t in by_template)
        return sorted({m for t, ms in by_template.items() if t.count("{") == fewest for m in ms})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(dialect_of(request), ApiError(500, "internal error"))

    def is_public(path: str) -> bool:
        path = path.rstrip("/")
        return path in ("/health", "") or path.endswith(_PUBLIC_PATH_SUFFIXES)

    plain_openapi = app.openapi
    documented: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not documented:
            documented.update(document_errors(plain_openapi(), dialect_of_path, is_public, config.numbers))
            app.openapi_schema = documented
        return documented

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes, batch_limit=config.max_batch_body_bytes,
                       dialect_of_path=dialect_of_path)
    return app
