"""The webhook receiver: an ASGI app that verifies, de-duplicates and durably stores relay webhooks.

Routes (relative to wherever the app is served or mounted):

* ``POST /webhooks/<dialect>``: one delivery from a relay. The raw bytes are size-checked (413),
  verified with the relay's scheme (401, fail closed), parsed as JSON (400), turned into canonical
  events by the dialect, committed to SQLite, and only then acknowledged with 200. Duplicates get
  200 too, so the sender stops retrying, but are stored once.
* ``GET /events``: stored events as a JSON list, filtered by the query string (see
  :class:`~relay_integrations.webhooks.inbox.EventFilter`); needs ``Authorization: Bearer <api key>``.
* ``POST /webhooks/relaysms/<token>``: a relaysms delivery at the secret URL. relaysms documents no
  signature, so the URL is the credential (compared in constant time, never logged); a Standard
  Webhooks signature, where present, is verified as well.
* ``GET /health``, and ``GET /openapi.json`` (:mod:`.openapi`).

Bounds (:mod:`.bounds`) are checked before anything is stored, each refusal a 400 naming the field,
so every event stored can be read back.

Mount it in another Starlette/FastAPI app with ``app.mount("/inbox", create_receiver_app(...))``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

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
from relay_integrations.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    SignatureError,
    check_dialect_secret,
    derive_dialect_secret,
    derive_relaysms_url_token,
    verify_for,
)
from relay_integrations.webhooks.bounds import BoundError, check_events, parse_body
from relay_integrations.webhooks.inbox import EventFilter
from relay_integrations.webhooks.openapi import openapi_document
from relay_integrations.webhooks.store import EventStore, StoreError, StoreResult

if TYPE_CHECKING:
    from relay_integrations.webhooks.opt_outs import OptOutRecorder

logger = logging.getLogger("relay_integrations.webhooks")

#: Relays send small JSON documents; 1 MiB leaves room for a phonerelay batch of inbound events.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

SecretsConfig = Sequence[str] | Mapping[str, Sequence[str] | str]


def secrets_by_dialect(secrets: SecretsConfig | str | None) -> dict[str, tuple[str, ...]]:
    """Normalise the ``secrets`` argument to ``{dialect: (secret, ...)}``.

    A string or a sequence holds *master* secrets: each dialect gets its own secret derived from
    each of them (:func:`~relay_integrations.signing.derive_dialect_secret`), so no scheme's secret
    is ever another's. A mapping gives each dialect its own secrets verbatim; its key ``"*"`` holds
    master secrets, derived for every dialect in addition to its own.

    :raises ValueError: an unknown dialect key, an empty secret, or a relaysms secret not of the
        form ``whsec_<base64>`` (the message never contains the secret).
    """
    result: dict[str, list[str]] = {name: [] for name in DIALECT_NAMES}
    masters: list[str] = []
    if secrets is None:
        pass
    elif isinstance(secrets, str):
        masters.append(secrets)
    elif isinstance(secrets, Mapping):
        for key, value in secrets.items():
            values = [value] if isinstance(value, str) else list(value)
            if key == "*":
                masters.extend(values)
            elif key in result:
                for index, secret in enumerate(values):
                    try:
                        check_dialect_secret(key, secret)
                    except ValueError as exc:
                        raise ValueError(f"secrets: {key} secret #{index + 1}: {exc}") from None
                result[key].extend(values)
            else:
                raise ValueError(f"secrets: unknown dialect {key!r}; expected one of {', '.join(DIALECT_NAMES)} or '*'")
    else:
        masters.extend(secrets)
    for index, master in enumerate(masters):
        if not isinstance(master, str) or not master:
            raise ValueError(f"secrets: secret #{index + 1} is empty or not a string")
        for name in DIALECT_NAMES:
            result[name].append(derive_dialect_secret(master, name))
    return {name: tuple(dict.fromkeys(values)) for name, values in result.items()}


def relaysms_url_tokens(secrets: SecretsConfig | str | None, explicit: Sequence[str] = ()) -> tuple[str, ...]:
    """The tokens that open ``/webhooks/relaysms/<token>``: the ones given, and one derived per master secret."""
    masters: list[str] = []
    if isinstance(secrets, str):
        masters = [secrets]
    elif isinstance(secrets, Mapping):
        value = secrets.get("*", [])
        masters = [value] if isinstance(value, str) else list(value)
    elif secrets is not None:
        masters = list(secrets)
    tokens = [t for t in explicit if t] + [derive_relaysms_url_token(m) for m in masters if m]
    return tuple(dict.fromkeys(tokens))


# The same answer whichever check failed (missing header, stale timestamp, wrong signature or
# secret): the reason goes to our log only, so a caller cannot probe which part it got right.
UNVERIFIED = "signature verification failed"


def _error(status: int, message: str, *, field: str | None = None) -> JSONResponse:
    content: dict[str, str] = {"error": message}
    if field:
        content["field"] = field
    return JSONResponse(content, status_code=status)


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
    __slots__ = ("delivery_id", "events", "future")

    def __init__(self, events: list[WebhookEvent], delivery_id: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.events = events
        self.delivery_id = delivery_id
        # Answered with (result, None) or (None, error): an error no one awaits any more (the request
        # went away) is then not reported as "never retrieved".
        self.future: asyncio.Future[tuple[StoreResult | None, BaseException | None]] = loop.create_future()


#: A delivery and what became of it: its result, or the error its request is answered with.
_Answer = tuple[_Pending, StoreResult | None, BaseException | None]


def _answer(items: list[_Answer]) -> None:
    for pending, result, error in items:
        if not pending.future.done():
            pending.future.set_result((result, error))


class _GroupCommit:
    """Commits the deliveries that arrive while a commit is running together, in one transaction.

    Every request still waits for its own commit before it is answered; what it saves is one fsync
    per delivery under load. One writer thread per receiver commits back to back: whatever queued
    during a commit is the next one. The writer never waits for the event loop to hand it the next
    batch (the loop is busy answering the batch just committed), and a commit costs the loop one
    wake-up rather than a thread-pool call. The thread starts with the first delivery and is a
    daemon: a commit cut short by the process ending was never acknowledged, so its sender retries.
    Requests wait on asyncio futures, so the app runs on asyncio (uvicorn, or hypercorn's asyncio
    worker), as Starlette apps mostly do.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._queue: list[_Pending] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    async def add(self, events: list[WebhookEvent], delivery_id: str | None) -> StoreResult:
        item = _Pending(events, delivery_id, asyncio.get_running_loop())
        with self._ready:
            self._queue.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="relay-webhooks-writer", daemon=True)
                self._thread.start()
            self._ready.notify()
        # Shielded: a request that goes away still has its delivery committed (and a later retry of
        # it is then a duplicate, answered 200).
        result, error = await asyncio.shield(item.future)
        if error is not None:
            raise error
        assert result is not None
        return result

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread (the next delivery starts another)."""
        with self._ready:
            thread, self._thread = self._thread, None
            self._ready.notify_all()
        if thread is not None:
            thread.join()

    def _write(self) -> None:
        me = threading.current_thread()
        while True:
            with self._ready:
                while not self._queue and self._thread is me:
                    self._ready.wait()
                batch, self._queue = self._queue, []
            if not batch:
                return  # closed, and everything queued was committed
            answers = self._store(batch)
            loops: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
            for answer in answers:
                loops.setdefault(answer[0].future.get_loop(), []).append(answer)
            for loop, items in loops.items():
                try:
                    loop.call_soon_threadsafe(_answer, items)
                except RuntimeError:  # that loop is closed: no one is waiting any more
                    pass

    def _store(self, batch: list[_Pending]) -> list[_Answer]:
        try:
            results = self.store.add_many([(p.events, p.delivery_id) for p in batch])
        except Exception as exc:
            if len(batch) == 1:  # the transaction rolled back: this request gets a 500
                return [(batch[0], None, exc)]
            # One delivery must not fail the others committed with it: store each alone.
            logger.warning("group commit of %d deliveries failed (%s); storing each alone", len(batch),
                           type(exc).__name__)
            return [answer for pending in batch for answer in self._store([pending])]
        return [(pending, None, StoreError(result.error)) if result.error is not None else (pending, result, None)
                for pending, result in zip(batch, results, strict=True)]


class WebhookReceiver:
    """The request handlers behind :func:`create_receiver_app`; one instance per app.

    :param store: where events go.
    :param secrets: ``{dialect: secrets}`` as :func:`secrets_by_dialect` returns.
    :param api_key: Bearer key for ``GET /events``; ``None`` refuses every query.
    :param max_body_bytes: larger deliveries get 413.
    :param tolerance: seconds a signed timestamp may be off, both ways.
    :param relaysms_tokens: tokens that open the relaysms secret URL ``/webhooks/relaysms/<token>``.
    :param opt_outs: records inbound STOP/START replies in a suppression list (and confirms opt-outs).
    """

    def __init__(
        self,
        store: EventStore,
        secrets: Mapping[str, Sequence[str]],
        api_key: str | None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tolerance: int = DEFAULT_TOLERANCE_SECONDS,
        relaysms_tokens: Sequence[str] = (),
        opt_outs: OptOutRecorder | None = None,
    ) -> None:
        self.store = store
        self.opt_outs = opt_outs
        self._commit = _GroupCommit(store)
        self._secrets = {name: tuple(values) for name, values in secrets.items()}
        self._api_key = api_key
        self._relaysms_tokens = tuple(t.encode() for t in relaysms_tokens if t)
        self.max_body_bytes = max_body_bytes
        self.tolerance = tolerance
        for name in DIALECT_NAMES:
            if not self._secrets.get(name):
                logger.warning("no webhook secret configured for %s; its signed deliveries will be refused", name)

    def __repr__(self) -> str:
        return f"WebhookReceiver(store={self.store!r})"

    def close(self) -> None:
        """Commit the deliveries still queued and stop the writer thread; the store stays open."""
        self._commit.close()

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
            return _error(413, f"body: over {self.max_body_bytes} bytes")
        headers = dict(request.headers)
        try:
            delivery_id = self.verify(dialect, body, headers)
        except SignatureError as exc:
            logger.warning("rejected %s webhook: %s", dialect, exc)
            return _error(401, UNVERIFIED)
        return await self._accept(dialect, body, headers, delivery_id)

    async def receive_relaysms_secret_url(self, request: Request) -> JSONResponse:
        """A relaysms delivery at ``/webhooks/relaysms/<token>``: the URL is the credential (relaysms.md
        documents no signature); a Standard Webhooks signature, where present, is verified too."""
        given = request.path_params["token"].encode()
        # Constant time, and every configured token compared, so timing tells nothing. Never logged.
        found = False
        for token in self._relaysms_tokens:
            found |= hmac.compare_digest(given, token)
        if not found:
            logger.warning("rejected relaysms webhook: unknown secret URL")
            return _error(404, "not found")
        try:
            body = await _read_body(request, self.max_body_bytes)
        except _BodyTooLarge:
            logger.warning("rejected relaysms webhook: body over %d bytes", self.max_body_bytes)
            return _error(413, f"body: over {self.max_body_bytes} bytes")
        headers = dict(request.headers)
        delivery_id: str | None = None
        if any(h.lower() in ("webhook-signature", "webhook-id", "webhook-timestamp") for h in headers):
            try:
                delivery_id = self.verify("relaysms", body, headers)
            except SignatureError as exc:
                logger.warning("rejected relaysms webhook at the secret URL: %s", exc)
                return _error(401, UNVERIFIED)
        return await self._accept("relaysms", body, headers, delivery_id)

    async def _accept(self, dialect: str, body: bytes, headers: Mapping[str, str],
                      delivery_id: str | None) -> JSONResponse:
        try:
            payload = parse_body(body)
        except BoundError as exc:
            logger.warning("rejected %s webhook: %s", dialect, exc)
            return _error(400, str(exc), field=exc.field)
        if not isinstance(payload, dict):
            logger.warning("rejected %s webhook: body is not a JSON object", dialect)
            return _error(400, "body: not a JSON object", field="body")
        try:
            events = get_dialect(dialect).parse_webhook(payload, dict(headers))
        except (RelayError, ValidationError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            logger.warning("rejected %s webhook: not a recognised payload (%s)", dialect, type(exc).__name__)
            return _error(400, f"body: not a recognised {dialect} webhook payload", field="body")
        events = [e if e.dialect == dialect else e.model_copy(update={"dialect": dialect}) for e in events]
        try:
            check_events(events)
        except BoundError as exc:
            logger.warning("rejected %s webhook: %s", dialect, exc)
            return _error(400, str(exc), field=exc.field)
        if self.opt_outs is not None and self.opt_outs.wants(events):
            # Before the events are stored, so a STOP anyone can read in the inbox is already on the
            # list. Recording is safe to repeat: a delivery answered 500 comes again.
            try:
                await self.opt_outs.record(events)
            except Exception as exc:
                logger.error("could not record the opt-outs of a %s webhook: %s", dialect, type(exc).__name__)
                return _error(500, "could not record the delivery's opt-outs; retry later")
        try:
            result = await self._commit.add(events, delivery_id)
        except Exception as exc:  # nothing of this delivery stored; the sender retries
            logger.error("could not store %s webhook: %s", dialect, type(exc).__name__)
            return _error(500, "could not store the delivery; retry later")
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
        params = request.query_params
        repeated = sorted({k for k in params if len(params.getlist(k)) > 1})
        if repeated:
            return _error(400, f"{repeated[0]}: given more than once", field=repeated[0])
        try:
            match = EventFilter.coerce(dict(params))
        except ValueError as exc:
            return _error(400, str(exc), field=getattr(exc, "field", None))
        found: list[WebhookEvent] = await run_in_threadpool(self.store.query, match.to_query())
        return JSONResponse([event.model_dump(mode="json") for event in found])

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(openapi_document())


def create_receiver_app(
    db_path: str | os.PathLike[str],
    secrets: SecretsConfig | str | None,
    api_key: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    synchronous: str = "FULL",
    relaysms_tokens: Sequence[str] = (),
    opt_outs: OptOutRecorder | None = None,
) -> Starlette:
    """The webhook receiver as an ASGI app.

    :param db_path: the event store: an SQLite file (created if missing; WAL mode) or a SQLAlchemy
        URL such as ``postgresql://user:password@host:5432/db`` (several receivers may share it).
    :param secrets: webhook secrets; several at once during rotation. A string or list holds master
        secrets, from which each dialect's own secret is derived; a mapping ``{dialect: [secrets]}``
        gives dialects their secrets verbatim (``"*"`` for master secrets). See :mod:`relay_integrations.signing`.
        With no secret for a dialect, all its signed deliveries are refused (401).
    :param api_key: Bearer key for ``GET /events``; ``None`` refuses every query.
    :param max_body_bytes: larger deliveries get 413 without being read.
    :param tolerance: seconds a signed timestamp may be off, both ways (default 5 minutes).
    :param synchronous: SQLite ``synchronous`` for writes (``FULL``: acknowledged events survive power loss).
    :param relaysms_tokens: tokens of the relaysms secret URL ``/webhooks/relaysms/<token>``, in
        addition to the one derived from each master secret.
    :param opt_outs: records inbound STOP/START replies of one relay account in its suppression list
        (see :class:`~relay_integrations.webhooks.opt_outs.OptOutRecorder`).
    """
    receiver = WebhookReceiver(
        EventStore(db_path, synchronous=synchronous),
        secrets_by_dialect(secrets),
        api_key,
        max_body_bytes=max_body_bytes,
        tolerance=tolerance,
        relaysms_tokens=relaysms_url_tokens(secrets, relaysms_tokens),
        opt_outs=opt_outs,
    )
    return build_app(receiver)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Unknown routes and methods answer JSON too, as the OpenAPI document says (405 keeps its Allow).
    status = getattr(exc, "status_code", 404)
    message = "method not allowed" if status == 405 else "not found"
    return JSONResponse({"error": message}, status_code=status, headers=getattr(exc, "headers", None))


def build_app(receiver: WebhookReceiver) -> Starlette:
    """The ASGI app around an existing :class:`WebhookReceiver`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if receiver.opt_outs is not None:
            await receiver.opt_outs.resume()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(receiver.close)
            if receiver.opt_outs is not None:
                await receiver.opt_outs.aclose()

    app = Starlette(
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
        routes=[
            Route("/webhooks/relaysms/{token}", receiver.receive_relaysms_secret_url, methods=["POST"]),
            Route("/webhooks/{dialect}", receiver.receive, methods=["POST"]),
            Route("/events", receiver.events, methods=["GET"]),
            Route("/health", receiver.health, methods=["GET"]),
            Route("/openapi.json", receiver.openapi, methods=["GET"]),
        ]
    )
    app.state.receiver = receiver
    app.state.store = receiver.store
    return app


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "WebhookReceiver",
    "build_app",
    "create_receiver_app",
    "relaysms_url_tokens",
    "secrets_by_dialect",
]
