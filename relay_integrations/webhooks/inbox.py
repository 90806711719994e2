"""Query the webhook events a receiver stored, and wait for the one you need.

Two ways in, with the same methods:

* ``WebhookInbox(db_path)`` reads the receiver's SQLite file directly (same machine).
* ``WebhookInbox.remote(base_url, api_key)`` asks a running receiver over HTTP (``GET /events``).

::

    inbox = WebhookInbox.remote("http://127.0.0.1:5111", api_key="...")
    event = inbox.wait_for({"message_id": receipt.message_id, "state": "delivered"}, timeout=60)
    reply = inbox.wait_for(EventFilter(kind="inbound", sender="+15551234567", after=event.cursor), timeout=600)

Events that arrived before the call count too, so nothing is missed between a send and the wait;
pass ``after=<cursor>`` to look only at newer ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import httpx
from anyio.lowlevel import RunVar
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from relay_integrations._client_base import default_ssl_context
from relay_integrations.models import MessageState, WebhookEvent, later_state
from relay_integrations.webhooks.bounds import MAX_ID_CHARS
from relay_integrations.webhooks.store import MAX_CURSOR, MAX_LIMIT, EventQuery, EventStore, is_database_url


class WebhookWaitTimeout(TimeoutError):
    """No matching event arrived within the timeout.

    :param match: the filter that was waited for.
    :param timeout: seconds waited.
    """

    def __init__(self, match: EventFilter, timeout: float) -> None:
        self.match = match
        self.timeout = timeout
        super().__init__(f"no webhook event matching {match.describe()} within {timeout:g}s")


class WebhookInboxError(RuntimeError):
    """A remote inbox answered with an error (never contains the API key).

    :param status_code: the receiver's HTTP status, ``None`` when it could not be reached.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


MAX_TEXT_FILTER_CHARS = 1000


class InvalidEventFilter(ValueError):
    """An event filter that does not validate; ``field`` names the first bad field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EventFilter(BaseModel):
    """Which events to return; every field given must match, ``None`` matches anything.

    :param dialect: relay dialect (``smsgate``, ``coop``, ``relaysms``, ``phonerelay``).
    :param kind: ``status`` (about a message sent) or ``inbound`` (a message or call received).
    :param event_type: the relay's own event name, as the dialect reports it.
    :param message_id: the message the event is about.
    :param state: canonical state (``delivered``, ``failed``...).
    :param sender: who sent it (for inbound events, the person replying).
    :param recipient: who it was for.
    :param text_contains: case-insensitive substring of the text.
    :param after: only events with a cursor greater than this one.
    :param limit: at most this many events per query (1-1000).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dialect: str | None = None
    kind: Literal["status", "inbound", "other"] | None = None
    event_type: str | None = None
    message_id: str | None = None
    state: MessageState | None = None
    sender: str | None = None
    recipient: str | None = None
    text_contains: str | None = None
    after: int | None = Field(default=None, ge=0, le=MAX_CURSOR)
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)

    @field_validator("dialect", "event_type", "message_id", "sender", "recipient", "text_contains")
    @classmethod
    def _storable_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The stores cannot compare what they cannot hold (PostgreSQL text has no NUL), and no stored
        # id is longer than the receiver's bound.
        if value is not None:
            if "\x00" in value:
                raise ValueError("contains a NUL character")
            limit = MAX_TEXT_FILTER_CHARS if info.field_name == "text_contains" else MAX_ID_CHARS
            if len(value) > limit:
                raise ValueError(f"longer than {limit} characters")
        return value

    @classmethod
    def coerce(cls, match: EventFilter | Mapping[str, Any] | None = None, **kw: Any) -> EventFilter:
        """An :class:`EventFilter` from a filter, a mapping (e.g. from an Airflow trigger's kwargs) or keywords."""
        if match is None:
            base: dict[str, Any] = {}
        elif isinstance(match, EventFilter):
            base = match.model_dump(exclude_unset=True)
        elif isinstance(match, Mapping):
            base = dict(match)
        else:
            raise TypeError(f"match must be an EventFilter or a mapping, not {type(match).__name__}")
        base.update(kw)
        try:
            return cls(**base)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in err["loc"]) + f": {err['msg']}" for err in exc.errors())
            first = ".".join(str(p) for p in exc.errors()[0]["loc"]) if exc.errors() else None
            raise InvalidEventFilter(f"invalid event filter ({fields})", field=first) from None

    def to_query(self) -> EventQuery:
        data = self.model_dump()
        data["state"] = self.state.value if self.state else None
        return EventQuery(**data)

    def to_params(self) -> dict[str, str]:
        """Query-string parameters of ``GET /events``."""
        params = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        return {k: str(v) for k, v in params.items()}

    def describe(self) -> str:
        given = self.model_dump(mode="json", exclude_defaults=True)
        return ", ".join(f"{k}={v!r}" for k, v in given.items()) or "anything"


class _Backend(Protocol):
    def query(self, match: EventFilter) -> list[WebhookEvent]: ...

    async def aquery(self, match: EventFilter) -> list[WebhookEvent]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class _LocalBackend:
    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.store = EventStore(db_path)

    def query(self, match: EventFilter) -> list[WebhookEvent]:
        return self.store.query(match.to_query())

    async def aquery(self, match: EventFilter) -> list[WebhookEvent]:
        return await anyio.to_thread.run_sync(self.query, match)

    def close(self) -> None:
        self.store.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.store.close)


class _RemoteBackend:
    def __init__(self, base_url: str, api_key: str, timeout: float, transport: httpx.BaseTransport | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        # One TLS context for every client (building one costs ~0.1 s of CPU; a triggerer polls often).
        self._client = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport,
                                    verify=default_ssl_context())
        # One async client per event loop that asks (an Airflow triggerer, anyio tests): a client
        # cannot cross loops, and one per poll would reconnect (and rebuild its TLS setup) every time.
        self._async_client: RunVar[httpx.AsyncClient] = RunVar(f"relay-webhook-inbox-{id(self)}")
        self._async_clients: list[httpx.AsyncClient] = []

    def _parse(self, response: httpx.Response) -> list[WebhookEvent]:
        if response.status_code != 200:
            raise WebhookInboxError(
                f"GET {self.base_url}/events answered {response.status_code}", status_code=response.status_code
            )
        return [WebhookEvent.model_validate(item) for item in response.json()]

    def query(self, match: EventFilter) -> list[WebhookEvent]:
        try:
            response = self._client.get("/events", params=match.to_params())
        except httpx.TransportError as exc:
            raise WebhookInboxError(f"cannot reach {self.base_url}/events: {type(exc).__name__}") from exc
        return self._parse(response)

    def _loop_client(self) -> httpx.AsyncClient:
        try:
            return self._async_client.get()
        except LookupError:
            client = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=self._timeout,
                                       verify=default_ssl_context())
            self._async_client.set(client)
            self._async_clients.append(client)
            return client

    async def aquery(self, match: EventFilter) -> list[WebhookEvent]:
        try:
            response = await self._loop_client().get("/events", params=match.to_params())
        except httpx.TransportError as exc:
            raise WebhookInboxError(f"cannot reach {self.base_url}/events: {type(exc).__name__}") from exc
        return self._parse(response)

    async def aclose(self) -> None:
        """Close the sync client and this event loop's async client."""
        self._client.close()
        try:
            client = self._async_client.get()
        except LookupError:
            return
        self._async_clients.remove(client)
        await client.aclose()

    def close(self) -> None:
        self._client.close()
        # Async clients of loops that are over hold no running connections worth closing from here:
        # closing one needs its own loop, so they are only dropped (their sockets close with them).
        self._async_clients.clear()


def _fold_states(events: list[WebhookEvent], state: MessageState | None) -> MessageState | None:
    for event in events:
        if event.state is not None:
            state = later_state(state, event.state)
    return state


class WebhookInbox:
    """The events a webhook receiver stored, queryable and awaitable.

    :param db_path: the receiver's store, as given to ``relay webhooks serve --db``: an SQLite file
        path, or a SQLAlchemy URL such as ``postgresql://user:password@host:5432/db``.
    """

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        local = _LocalBackend(db_path)
        self._backend: _Backend = local
        self._where = f"db {local.store.where!r}"

    @classmethod
    def remote(
        cls,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> WebhookInbox:
        """An inbox that asks a running receiver over HTTP.

        :param base_url: the receiver's root (``http://127.0.0.1:5111``, or ``.../inbox`` where it is mounted).
        :param api_key: the receiver's ``--api-key``, sent as a Bearer token.
        :param timeout: seconds per HTTP request.
        """
        inbox = cls.__new__(cls)
        inbox._backend = _RemoteBackend(base_url, api_key, timeout, transport)
        inbox._where = f"url {base_url!r}"
        return inbox

    @classmethod
    def at(cls, location: str, api_key: str | None = None) -> WebhookInbox:
        """The inbox at ``location``: a receiver's URL (``http(s)://``, read with ``api_key``, the
        receiver's own key), a database URL, or an SQLite path (``~`` expanded).

        :raises ValueError: a receiver URL without ``api_key``.
        """
        if location.startswith(("http://", "https://")):
            if not api_key:
                raise ValueError("api_key: required to read a receiver at a URL (its --api-key)")
            return cls.remote(location, api_key)
        if is_database_url(location):
            return cls(location)
        return cls(Path(location).expanduser())

    def __repr__(self) -> str:
        return f"WebhookInbox({self._where})"

    def __enter__(self) -> WebhookInbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    async def __aenter__(self) -> WebhookInbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """:meth:`close` from an event loop: also closes the HTTP client this loop used."""
        await self._backend.aclose()

    # --- queries ----------------------------------------------------------------------------------
    def query(self, filter: EventFilter | Mapping[str, Any] | None = None, **kw: Any) -> list[WebhookEvent]:
        """Events matching ``filter`` and/or keyword filters, oldest first (at most ``limit``)."""
        return self._backend.query(EventFilter.coerce(filter, **kw))

    async def aquery(self, filter: EventFilter | Mapping[str, Any] | None = None, **kw: Any) -> list[WebhookEvent]:
        """Async twin of :meth:`query`."""
        return await self._backend.aquery(EventFilter.coerce(filter, **kw))

    def wait_for(
        self, match: EventFilter | Mapping[str, Any], timeout: float, poll_interval: float = 0.5
    ) -> WebhookEvent:
        """The first (lowest cursor) event matching ``match``, waiting up to ``timeout`` seconds for it.

        :raises WebhookWaitTimeout: nothing matched in time.
        """
        wanted = EventFilter.coerce(match, limit=1)
        deadline = time.monotonic() + timeout
        while True:
            found = self._backend.query(wanted)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WebhookWaitTimeout(wanted, timeout)
            time.sleep(min(poll_interval, remaining))

    # The same signature as wait_for (a contract the Airflow trigger and Prefect task rely on).
    async def await_for(
        self,
        match: EventFilter | Mapping[str, Any],
        timeout: float,  # noqa: ASYNC109
        poll_interval: float = 0.5,
    ) -> WebhookEvent:
        """Async twin of :meth:`wait_for`; does not block the event loop."""
        wanted = EventFilter.coerce(match, limit=1)
        deadline = time.monotonic() + timeout
        while True:
            found = await self._backend.aquery(wanted)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WebhookWaitTimeout(wanted, timeout)
            await anyio.sleep(min(poll_interval, remaining))

    def message_state(self, message_id: str, *, recipient: str | None = None) -> MessageState | None:
        """The message's latest state over every status event stored for it, ``None`` if there is none.

        It never moves backwards: a ``sent`` that arrives after ``delivered`` leaves it ``delivered``.
        """
        if isinstance(self._backend, _LocalBackend):
            return self._backend.store.message_state(message_id, recipient=recipient)
        state: MessageState | None = None
        page = EventFilter(message_id=message_id, kind="status", recipient=recipient, limit=MAX_LIMIT)
        while True:
            events = self._backend.query(page)
            state = _fold_states(events, state)
            if len(events) < page.limit:
                return state
            page = page.model_copy(update={"after": events[-1].cursor})

    async def amessage_state(self, message_id: str, *, recipient: str | None = None) -> MessageState | None:
        """Async twin of :meth:`message_state`."""
        if isinstance(self._backend, _LocalBackend):
            return await anyio.to_thread.run_sync(lambda: self.message_state(message_id, recipient=recipient))
        state: MessageState | None = None
        page = EventFilter(message_id=message_id, kind="status", recipient=recipient, limit=MAX_LIMIT)
        while True:
            events = await self._backend.aquery(page)
            state = _fold_states(events, state)
            if len(events) < page.limit:
                return state
            page = page.model_copy(update={"after": events[-1].cursor})


__all__ = ["EventFilter", "WebhookInbox", "WebhookInboxError", "WebhookWaitTimeout"]
