"""RelayHook: an Airflow connection of type ``relay`` turned into the core relay clients.

The connection holds the relay's base URL (host), the API key (password), the smsgate login (login)
and, in ``extra``, the fields the connection form declares (dialect, phone_id, sender, timeout,
max_retries, webhook_inbox_url, webhook_inbox_api_key, ledger_conn_id). Anything else in ``extra`` is ignored: it is
never turned into a header or a request field.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from relay_integrations.settings import RelaySettings as CoreRelaySettings
from relay_integrations.settings import SettingsError

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from relay_integrations.client import AsyncRelayClient, RelayClient
    from relay_integrations.webhooks.inbox import WebhookInbox

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RelayConnectionConfigError(ValueError):
    """The Airflow connection cannot describe a relay; ``field`` names the connection field at fault."""

    def __init__(self, conn_id: str, field: str, problem: str) -> None:
        super().__init__(f"connection {conn_id!r}: {field}: {problem}")
        self.conn_id = conn_id
        self.field = field
        self.problem = problem


# Core setting -> the connection field a user fixes.
_CONNECTION_FIELDS = {
    "base_url": "host", "api_key": "password", "login": "login", "dialect": "extra.dialect",
    "phone_id": "extra.phone_id", "sender": "extra.sender", "timeout": "extra.timeout",
    "max_retries": "extra.max_retries", "webhook_inbox": "extra.webhook_inbox_url",
    "webhook_inbox_api_key": "extra.webhook_inbox_api_key",
}


@dataclass(frozen=True)
class RelaySettings:
    """One Airflow connection read as :class:`relay_integrations.settings.RelaySettings` (validated
    there, as the Prefect block and the CLI are), with the Airflow-only parts around it. The keys
    never show in the repr."""

    conn_id: str
    relay: CoreRelaySettings = field(repr=False)
    ledger_conn_id: str | None = None

    @property
    def base_url(self) -> str:
        return self.relay.base_url

    @property
    def dialect(self) -> str:
        return self.relay.dialect

    @property
    def api_key(self) -> str:
        return self.relay.api_key.get_secret_value()

    @property
    def login(self) -> str | None:
        return self.relay.login

    @property
    def phone_id(self) -> str | None:
        return self.relay.phone_id

    @property
    def sender(self) -> str | None:
        return self.relay.sender

    @property
    def timeout(self) -> float:
        return self.relay.timeout

    @property
    def max_retries(self) -> int:
        return self.relay.max_retries

    @property
    def webhook_inbox_url(self) -> str | None:
        return self.relay.webhook_inbox

    @property
    def webhook_inbox_api_key(self) -> str | None:
        key = self.relay.webhook_inbox_api_key
        return key.get_secret_value() if key is not None else None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~relay_integrations.client.RelayClient` and its async twin."""
        return self.relay.client_kwargs()

    def with_overrides(self, **overrides: Any) -> RelaySettings:
        """The same connection with some client settings replaced (validated like the rest)."""
        return replace(self, relay=_validated(self.conn_id, {**dict(self.relay), **overrides}))


def _validated(conn_id: str, values: Mapping[str, Any]) -> CoreRelaySettings:
    try:
        return CoreRelaySettings.from_values(values)
    except SettingsError as exc:
        raise RelayConnectionConfigError(conn_id, _CONNECTION_FIELDS.get(exc.field, exc.field), exc.problem) from None


def base_url_from_connection(conn: Connection) -> str:
    """The relay's base URL: ``host`` if it is a URL, else built from host, port and schema.

    ``relay://:KEY@127.0.0.1:8080/smsgate`` (URI form) gives host ``127.0.0.1``, port ``8080`` and schema
    ``smsgate``, so the base URL is ``http://127.0.0.1:8080/smsgate``. A host without a scheme gets ``https``,
    except loopback hosts, which get ``http``. A port or schema set next to a full URL host is added
    when the URL has none.
    """
    host = (conn.host or "").strip()
    if not host:
        raise RelayConnectionConfigError(conn.conn_id, "host", "the relay's base URL is required")
    if "://" not in host:
        hostname = urlsplit("//" + host).hostname or ""
        scheme = "http" if hostname in _LOOPBACK_HOSTS else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RelayConnectionConfigError(conn.conn_id, "host", f"not an http(s) URL: {conn.host!r}")
    netloc = parts.netloc
    if conn.port and parts.port is not None and conn.port != parts.port:
        raise RelayConnectionConfigError(
            conn.conn_id, "port", f"{conn.port} differs from the base URL's port {parts.port}; set one of them"
        )
    if conn.port and parts.port is None:
        netloc = f"{netloc}:{conn.port}"
    path = parts.path.rstrip("/")
    if conn.schema and not path:
        path = "/" + conn.schema.strip("/")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def settings_from_connection(conn: Connection, extras: Mapping[str, Any]) -> RelaySettings:
    """Read a ``relay`` connection; ``extras`` is its decoded ``extra`` (read sync or async by the caller).

    Extras are looked up by their plain names and, for connections saved by older UIs, by
    ``extra__relay__<name>``. Unknown extras are ignored.
    """

    def extra(name: str) -> Any:
        value = extras.get(name)
        if value is None or value == "":
            value = extras.get(f"extra__relay__{name}")
        return value

    values = {
        "base_url": base_url_from_connection(conn), "api_key": conn.password, "login": conn.login,
        "dialect": extra("dialect"), "phone_id": extra("phone_id"), "sender": extra("sender"),
        "timeout": extra("timeout"), "max_retries": extra("max_retries"),
        "webhook_inbox": extra("webhook_inbox_url"), "webhook_inbox_api_key": extra("webhook_inbox_api_key"),
    }
    ledger = extra("ledger_conn_id")
    return RelaySettings(conn_id=conn.conn_id, relay=_validated(conn.conn_id, values),
                         ledger_conn_id=str(ledger).strip() or None if ledger is not None else None)


def _decode_extra(conn: Connection) -> dict[str, Any]:
    """``extra`` as a dict without the sync secrets masker (callers mask what they use)."""
    if not conn.extra:
        return {}
    try:
        decoded = json.loads(conn.extra)
    except json.JSONDecodeError:
        raise RelayConnectionConfigError(conn.conn_id, "extra", "is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise RelayConnectionConfigError(conn.conn_id, "extra", "must be a JSON object")
    return decoded


class RelayHook(BaseHook):
    """Interact with a message relay (phonerelay, relaysms, coop or smsgate) through the core clients.

    :param relay_conn_id: The Airflow connection of type ``relay`` to use.
    :param timeout: Overrides the connection's per-request timeout (seconds).
    :param max_retries: Overrides the connection's retry count for retry-safe requests.
    """

    conn_name_attr = "relay_conn_id"
    default_conn_name = "relay_default"
    conn_type = "relay"
    hook_name = "Message relay"

    def __init__(
        self,
        relay_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.relay_conn_id = relay_conn_id
        self.timeout = timeout
        self.max_retries = max_retries

    def _apply_overrides(self, settings: RelaySettings) -> RelaySettings:
        overrides: dict[str, Any] = {}
        if self.timeout is not None:
            overrides["timeout"] = self.timeout
        if self.max_retries is not None:
            overrides["max_retries"] = self.max_retries
        return settings.with_overrides(**overrides) if overrides else settings

    @cached_property
    def settings(self) -> RelaySettings:
        """The connection, read once (sync); the API key is registered with the log masker."""
        from airflow.sdk.log import mask_secret

        conn = self.get_connection(self.relay_conn_id)
        settings = self._apply_overrides(settings_from_connection(conn, _decode_extra(conn)))
        mask_secret(settings.api_key)
        if settings.webhook_inbox_api_key:
            mask_secret(settings.webhook_inbox_api_key)
        return settings

    async def aget_settings(self) -> RelaySettings:
        """The connection read with the async APIs, safe on the triggerer's event loop."""
        from airflow.sdk.log import amask_secret

        conn = await self.aget_connection(self.relay_conn_id)
        extras = await conn.aextra_dejson()
        settings = self._apply_overrides(settings_from_connection(conn, extras))
        await amask_secret(settings.api_key)
        if settings.webhook_inbox_api_key:
            await amask_secret(settings.webhook_inbox_api_key)
        return settings

    def get_conn(self) -> RelayClient:
        """A new sync client for the connection; use it as a context manager so it is closed."""
        return self.get_client()

    def get_client(self) -> RelayClient:
        """A new :class:`~relay_integrations.client.RelayClient`; use it as a context manager."""
        return self.settings.relay.client()

    async def aget_async_client(self) -> AsyncRelayClient:
        """A new :class:`~relay_integrations.client.AsyncRelayClient`; use it with ``async with``."""
        settings = await self.aget_settings()
        return settings.relay.async_client()

    @staticmethod
    def inbox_for(settings: RelaySettings) -> WebhookInbox:
        """The webhook inbox named by the connection: a receiver URL, a store URL
        (``postgresql://...``, read directly from any worker) or a local SQLite path."""
        from relay_integrations.webhooks.inbox import WebhookInbox

        location = settings.webhook_inbox_url
        if not location:
            raise RelayConnectionConfigError(
                settings.conn_id, "extra.webhook_inbox_url", "required to wait for webhook events"
            )
        if location.startswith(("http://", "https://")):
            # The receiver has a key of its own; the relay's key never leaves for another service.
            if not settings.webhook_inbox_api_key:
                raise RelayConnectionConfigError(
                    settings.conn_id, "extra.webhook_inbox_api_key",
                    "required with a receiver URL in webhook_inbox_url (the receiver's --api-key; "
                    "the relay's API key is never sent to it)",
                )
        return WebhookInbox.at(location, settings.webhook_inbox_api_key)

    def get_webhook_inbox(self) -> WebhookInbox:
        """The connection's webhook inbox (see :meth:`inbox_for`)."""
        return self.inbox_for(self.settings)

    async def aget_webhook_inbox(self) -> WebhookInbox:
        """The connection's webhook inbox, with the connection read by the async APIs.

        Opened in a worker thread: a local inbox opens its database (and creates its tables) there,
        never on the triggerer's event loop.
        """
        settings = await self.aget_settings()
        return await asyncio.to_thread(self.inbox_for, settings)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: the relay answers its health endpoint and accepts the key."""
        from relay_integrations.errors import RelayError

        try:
            with self.get_client() as client:
                # The health endpoint where there is one, then an authenticated call, so a wrong key shows.
                answer = client.health()
        except RelayConnectionConfigError as e:
            # No connection id: the UI tests unsaved connections under a random transient id.
            return False, f"{e.field}: {e.problem}"
        except RelayError as e:
            return False, f"relay check failed: {e}"
        return True, f"{self.settings.dialect} relay at {self.settings.base_url} answered {answer.get('checked')}"
