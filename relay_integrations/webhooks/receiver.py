"""The webhook receiver: an ASGI app that verifies, de-duplicates and durably stores relay webhooks.

Routes (relative to wherever the app is served or mounted):

* ``POST /webhooks/<dialect>``: one delivery from a relay. The raw bytes are size-checked (413),
  verified with the relay's scheme (401, fail closed), parsed as JSON (400), turned into canonical
  events by the dialect, committed to SQLite, and only then acknowledged with 200. Duplicates get
  200 too, so the sender stops retrying, but are stored once.
* ``GET /events``: stored events as a JSON list, filtered by the query string (see
  :class:`~relay_integrations.webhooks.inbox.EventFilter`); needs ``Authorization: Bearer <api key>``.
* ``GET /health``.

Mount it in another Starlette/FastAPI app with ``app.mount("/inbox", create_receiver_app(...))``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
from collections.abc import Mapping, Sequence

import anyio
import anyio.to_thread
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from relay_integrations.dialects import DIALECT_NAMES, get_dialect
from relay_integrations.errors import RelayError
from relay_integrations.models import WebhookEvent
from relay_integrations.signing import DEFAULT_TOLERANCE_SECONDS, SignatureError, verify_for
from relay_integrations.webhooks.inbox import EventFilter
from relay_integrations.webhooks.store import EventStore, StoreResult

logger = logging.getLogger("relay_integrations.webhooks")

#: Relays send small JSON documents; 1 MiB leaves room for a phonerelay batch of inbound events.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

SecretsConfig = Sequence[str] | Mapping[str, Sequence[str] | str]


def secrets_by_dialect(secrets: SecretsConfig | str | None) -> dict[str, tuple[str, ...]]:
    """Normalise the ``secrets`` argument to ``{dialect: (secret, ...)}``.

    A sequence applies to every dialect. A mapping gives each dialect its own secrets; the key
    ``"*"`` applies to every dialect in addition to its own.

    :raises ValueError: an unknown dialect key, an empty secret, or a ``whsec_`` secret that is not base64
        (the message never contains the secret).
    """
    result: dict[str, list[str]] = {name: [] for name in DIALECT_NAMES}
    if secrets is None:
        pass
    elif isinstance(secrets, str):
        for name in DIALECT_NAMES:
            result[name].append(secrets)
    elif isinstance(secrets, Mapping):
        for key, value in secrets.items():
            values = [value] if isinstance(value, str) else list(value)
            if key == "*":
                for name in DIALECT_NAMES:
                    result[name].extend(values)
            elif key in result:
                result[key].extend(values)
            else:
                raise ValueError(f"secrets: unknown dialect {key!r}; expected one of {', '.join(DIALECT_NAMES)} or '*'")
    else:
        for name in DIALECT_NAMES:
            result[name].extend(secrets)
    for name, values in result.items():
        for index, secret in enumerate(values):
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"secrets: {name} secret #{index + 1} is empty or not a string")
            if secret.startswith("whsec_"):
                try:
                    base64.b64decode(secret[len("whsec_") :], validate=True)
                except (binascii.Error, ValueError):
                    raise ValueError(
                        f"secrets: {name} secret #{index + 1} starts with whsec_ but is not base64"
                    ) from None
    return {name: tuple(dict.fromkeys(values)) for name, values in result.items()}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    # Chunked bodies (or a lying Content-Length) are counted as they stream in.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Pending:
    __slots__ = ("delivery_id", "error", "events", "lead", "result", "wake")

    def __init__(self, events: list[WebhookEvent], delivery_id: str | None) -> None:
        self.events = events
        self.delivery_id = delivery_id
        self.wake = anyio.Event()  # set when committed, or when promoted to writer
        self.lead = False
        self.result: StoreResult | None = None
        self.error: BaseException | None = None


class _GroupCommit:
    """Commits the deliveries that arrive while a commit is running together, in one transaction.

    Every request still waits for its own commit before it is answered; what it saves is one fsync
    and one thread hand-off per delivery under load. One request at a time is the writer: it
    commits everything queued (its own delivery included), then hands the role to the first request
    that queued up meanwhile, so no request waits for more than two commits.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._queue: list[_Pending] = []
        self._writing = False

    async def add(self, events: list[WebhookEvent], delivery_id: str | None) -> StoreResult:
        item = _Pending(events, delivery_id)
        self._queue.append(item)
        # Shielded: the commit runs to its end anyway, and a writer that went away would strand the others.
        with anyio.CancelScope(shield=True):
            if self._writing:
                await item.wake.wait()
            else:
                self._writing = True
                item.lead = True
            if item.lead:
                try:
                    await self._commit_queued()
                finally:
                    if self._queue:
                        successor = self._queue[0]
                        successor.lead = True
                        successor.wake.set()
                    else:
                        self._writing = False
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    async def _commit_queued(self) -> None:
        batch, self._queue = self._queue, []
        try:
            results = await anyio.to_thread.run_sync(self.store.add_many, [(p.events, p.delivery_id) for p in batch])
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        except Exception as exc:  # the transaction rolled back: every request in it gets a 500
            for pending in batch:
                pending.error = exc
        for pending in batch:
            pending.lead = False
            pending.wake.set()


class WebhookReceiver:
    """The request handlers behind :func:`create_receiver_app`; one instance per app.

    :param store: where events go.
    :param secrets: ``{dialect: secrets}`` as :func:`secrets_by_dialect` returns.
    :param api_key: Bearer key for ``GET /events``; ``None`` refuses every query.
    :param max_body_bytes: larger deliveries get 413.
    :param tolerance: seconds a signed timestamp may be off, both ways.
    """

    def __init__(
        self,
        store: EventStore,
        secrets: Mapping[str, Sequence[str]],
        api_key: str | None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        self.store = store
        self._commit = _GroupCommit(store)
        self._secrets = {name: tuple(values) for name, values in secrets.items()}
        self._api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.tolerance = tolerance
        for name in DIALECT_NAMES:
            if not self._secrets.get(name):
                logger.warning("no webhook secret configured for %s; its deliveries will be refused", name)

    def __repr__(self) -> str:
        return f"WebhookReceiver(store={self.store!r})"

    def verify(self, dialect: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Raise :class:`SignatureError` unless the delivery is signed with one of the dialect's secrets."""
        return verify_for(dialect, body, headers, self._secrets.get(dialect, ()), tolerance=self.tolerance)

    async def receive(self, request: Request) -> JSONResponse:
        dialect = request.path_params["dialect"]
        if dialect not in DIALECT_NAMES:
            return _error(404, f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECT_NAMES)}")
        try:
            body = await _read_body(request, self.max_body_bytes)
        except _BodyTooLarge:
            logger.warning("rejected %s webhook: body over %d bytes", dialect, self.max_body_bytes)
            return _error(413, f"body over {self.max_body_bytes} bytes")
        headers = dict(request.headers)
        try:
            delivery_id = self.verify(dialect, body, headers)
        except SignatureError as exc:
            logger.warning("rejected %s webhook: %s", dialect, exc)
            return _error(401, f"signature verification failed: {exc}")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("rejected %s webhook: body is not JSON", dialect)
            return _error(400, "body is not valid JSON")
        if not isinstance(payload, dict):
            logger.warning("rejected %s webhook: body is not a JSON object", dialect)
            return _error(400, "body is not a JSON object")
        try:
            events = get_dialect(dialect).parse_webhook(payload, headers)
        except (RelayError, ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("rejected %s webhook: not a recognised payload (%s)", dialect, type(exc).__name__)
            return _error(400, f"not a recognised {dialect} webhook payload")
        events = [e if e.dialect == dialect else e.model_copy(update={"dialect": dialect}) for e in events]
        result = await self._commit.add(events, delivery_id)
        for event in result.stored:
            logger.info("stored %s webhook event %s", dialect, event.event_id)
        if result.duplicates:
            logger.info("ignored %d duplicate %s webhook event(s) (delivery %s)", result.duplicates, dialect,
                        delivery_id or ",".join(e.event_id for e in events))
        return JSONResponse(
            {
                "stored": len(result.stored),
                "duplicates": result.duplicates,
                "cursors": [e.cursor for e in result.stored],
            }
        )

    def _authorized(self, request: Request) -> bool:
        if not self._api_key:
            return False
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._api_key.encode())

    async def events(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "missing or wrong API key"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            match = EventFilter.coerce(dict(request.query_params))
        except ValueError as exc:
            return _error(400, str(exc))
        found: list[WebhookEvent] = await run_in_threadpool(self.store.query, match.to_query())
        return JSONResponse([event.model_dump(mode="json") for event in found])

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})


def create_receiver_app(
    db_path: str | os.PathLike[str],
    secrets: SecretsConfig | str | None,
    api_key: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    synchronous: str = "FULL",
) -> Starlette:
    """The webhook receiver as an ASGI app.

    :param db_path: SQLite file for events (created if missing; WAL mode).
    :param secrets: webhook secrets; several at once during rotation. A list applies to every
        dialect, a mapping ``{dialect: [secrets]}`` (``"*"`` for all) gives each its own.
        With no secret for a dialect, all its deliveries are refused (401).
    :param api_key: Bearer key for ``GET /events``; ``None`` refuses every query.
    :param max_body_bytes: larger deliveries get 413 without being read.
    :param tolerance: seconds a signed timestamp may be off, both ways (default 5 minutes).
    :param synchronous: SQLite ``synchronous`` for writes (``FULL``: acknowledged events survive power loss).
    """
    receiver = WebhookReceiver(
        EventStore(db_path, synchronous=synchronous),
        secrets_by_dialect(secrets),
        api_key,
        max_body_bytes=max_body_bytes,
        tolerance=tolerance,
    )
    return build_app(receiver)


def build_app(receiver: WebhookReceiver) -> Starlette:
    """The ASGI app around an existing :class:`WebhookReceiver`."""
    app = Starlette(
        routes=[
            Route("/webhooks/{dialect}", receiver.receive, methods=["POST"]),
            Route("/events", receiver.events, methods=["GET"]),
            Route("/health", receiver.health, methods=["GET"]),
        ]
    )
    app.state.receiver = receiver
    app.state.store = receiver.store
    return app


__all__ = ["DEFAULT_MAX_BODY_BYTES", "WebhookReceiver", "build_app", "create_receiver_app", "secrets_by_dialect"]
