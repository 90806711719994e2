"""Blocks that hold what it takes to reach a relay and a webhook inbox."""

from __future__ import annotations

from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, SecretStr, model_validator
from sqlalchemy.engine import URL, make_url

from relay_integrations.campaign.campaign_store import StoreLocation, hide_password
from relay_integrations.client import AsyncRelayClient, RelayClient
from relay_integrations.settings import DialectName, RelaySettings, SettingsError
from relay_integrations.webhooks.inbox import WebhookInbox

DOCUMENTATION_URL = "https://github.com/relay-integrations/relay-integrations#prefect-blocks"

class RelayCredentials(CredentialsBlock):
    """
    Block holding the address and credentials of a message relay, for use in tasks and flows.

    Args:
        base_url: The relay's base URL, with or without the API's base path.
        dialect: Which relay API the relay speaks.
        api_key: The relay's API key (the password for smsgate).
        login: The login for relays with Basic auth (smsgate).
        phone_id: Default phone/device for relays that route through a phone (phonerelay).
        sender: Default sender number or name.
        timeout: Seconds to wait for the relay's answer.
        max_retries: How often the client retries transient failures (429, 5xx, connection errors).
        ledger: The campaign ledger every worker shares: a database URL
            (``postgresql://user:pass@host:5432/db``), an SQLite path, or a saved block holding one
            (``sqlalchemy-connector/NAME`` from prefect-sqlalchemy, or ``secret/NAME``).

    Examples:
        Load stored relay credentials:
        ```python
        from prefect_blocks import RelayCredentials
        relay_credentials_block = RelayCredentials.load("BLOCK_NAME")
        ```

        Send a message with the client:
        ```python
        from prefect_blocks import RelayCredentials
        from relay_integrations import OutboundMessage
        relay_credentials_block = RelayCredentials.load("BLOCK_NAME")
        with relay_credentials_block.get_client() as client:
            client.send(OutboundMessage(to="+15551234567", text="hello"))
        ```
    """

    _block_type_name = "Relay Credentials"
    _block_type_slug = "relay-credentials"
    _documentation_url = HttpUrl(DOCUMENTATION_URL)
    _description = "Address and credentials of a message relay (phonerelay, relaysms, coop or smsgate)."

    base_url: str = Field(
        default=...,
        title="Base URL",
        description="The relay's base URL, with or without the API's base path.",
        examples=["http://127.0.0.1:8787/phonerelay"],
    )
    dialect: DialectName = Field(
        default=...,
        title="Relay API",
        description="Which relay API the relay speaks.",
    )
    api_key: SecretStr = Field(
        default=...,
        title="API key",
        description="The relay's API key (for smsgate, the password of the login).",
    )
    login: str | None = Field(
        default=None,
        title="Login",
        description="The login for relays that use Basic auth (smsgate).",
    )
    phone_id: str | None = Field(
        default=None,
        title="Phone ID",
        description="Default phone or device that sends, for relays that route through a phone (phonerelay).",
    )
    sender: str | None = Field(
        default=None,
        title="Sender",
        description="Default sender number or name used when a message names none.",
    )
    timeout: float = Field(
        default=10.0,
        gt=0,
        title="Timeout (seconds)",
        description="Seconds to wait for the relay's answer to one request.",
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        title="Max retries",
        description="How often the client retries transient failures (429, 5xx, connection errors).",
    )
    ledger: SecretStr | None = Field(
        default=None,
        title="Campaign ledger",
        description=(
            "Where campaigns record what the relay accepted, shared by every worker that may run or retry a "
            "task: a database URL (postgresql://user:pass@host:5432/db), an SQLite path, or a saved block "
            "holding one: 'sqlalchemy-connector/NAME' (prefect-sqlalchemy) or 'secret/NAME'. Empty: a local "
            "SQLite file on the worker."
        ),
        examples=["postgresql://relay:pass@db:5432/relay", "sqlalchemy-connector/relay-ledger"],
    )

    def ledger_location(self) -> StoreLocation | None:
        """The ledger as a path or SQLAlchemy URL (a block reference loaded), or None for the default."""
        if self.ledger is None or not self.ledger.get_secret_value().strip():
            return None
        return resolve_ledger_reference(self.ledger.get_secret_value().strip())

    async def aledger_location(self) -> StoreLocation | None:
        """:meth:`ledger_location` with Prefect's async block loading."""
        if self.ledger is None or not self.ledger.get_secret_value().strip():
            return None
        return await aresolve_ledger_reference(self.ledger.get_secret_value().strip())

    def tracking_reference(self, ledger: str | None = None) -> str | None:
        """How a campaign result names its store so a wait task finds it again without a password in it:
        the saved block the URL came from, or the credentials' own ledger (None: the report's ledger)."""
        value = (ledger or "").strip() or (self.ledger.get_secret_value().strip() if self.ledger else "")
        if not value:
            return None
        if _is_block_reference(value):
            return value
        if not ledger and hide_password(value) != value:
            return CREDENTIALS_LEDGER
        return None

    def tracking_location(self, store: str) -> StoreLocation | None:
        """The store a campaign reference names (:meth:`tracking_reference`), or None to use it as it is."""
        if store == CREDENTIALS_LEDGER:
            return self.ledger_location()
        return resolve_ledger_reference(store) if _is_block_reference(store) else None

    async def atracking_location(self, store: str) -> StoreLocation | None:
        if store == CREDENTIALS_LEDGER:
            return await self.aledger_location()
        return await aresolve_ledger_reference(store) if _is_block_reference(store) else None

    @model_validator(mode="after")
    def _check_with_the_core_rules(self) -> RelayCredentials:
        # The rules every adapter shares (relay_integrations.settings): a bad base URL fails when the
        # block is saved, not when a flow first sends.
        self.settings()
        return self

    def settings(self) -> RelaySettings:
        """The block as the core's :class:`~relay_integrations.settings.RelaySettings`.

        :raises ValueError: a field breaks a rule; the message names it and never holds the key.
        """
        try:
            return RelaySettings.from_values({
                "base_url": self.base_url, "dialect": self.dialect, "api_key": self.api_key, "login": self.login,
                "phone_id": self.phone_id, "sender": self.sender, "timeout": self.timeout,
                "max_retries": self.max_retries,
            })
        except SettingsError as exc:
            raise ValueError(str(exc)) from None

    def get_client(self) -> RelayClient:
        """A synchronous client for the relay; use it as a context manager so its connections close."""
        return self.settings().client()

    def get_async_client(self) -> AsyncRelayClient:
        """An asynchronous client for the relay; use it with ``async with``."""
        return self.settings().async_client()


#: A campaign reference's store when the ledger URL (with its password) is the credentials block's own.
CREDENTIALS_LEDGER = "relay-credentials:ledger"


def _is_block_reference(value: str) -> bool:
    # "slug/name": no scheme, one slash, and the slug of a block type (not a relative file path).
    return "://" not in value and value.count("/") == 1 and value.split("/")[0] in _LEDGER_BLOCK_SLUGS


_LEDGER_BLOCK_SLUGS = ("sqlalchemy-connector", "secret")


def _location_from_block(block: Any, reference: str) -> StoreLocation:
    info = getattr(block, "connection_info", None)
    if info is not None:  # prefect-sqlalchemy's SqlAlchemyConnector
        if hasattr(info, "create_url"):
            url: URL = info.create_url()
            return url
        return make_url(str(info))
    getter = getattr(block, "get", None)
    if callable(getter):  # a Secret block holding the URL
        value = getter()
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ValueError(f"ledger: block {reference!r} holds no database URL")


def resolve_ledger_reference(value: str) -> StoreLocation:
    """A ledger URL/path, or the URL held by the saved block ``slug/name``."""
    if not _is_block_reference(value):
        return value
    return _location_from_block(Block.load(value), value)


async def aresolve_ledger_reference(value: str) -> StoreLocation:
    if not _is_block_reference(value):
        return value
    return _location_from_block(await Block.aload(value), value)


class RelayWebhookInbox(Block):
    """
    Block pointing at the inbox where a relay's webhooks are stored: a local SQLite file written by
    ``relay webhooks serve``, or that receiver's URL.

    Args:
        location: Path of the inbox database, or the webhook receiver's base URL.
        api_key: The receiver's API key, needed when ``location`` is a URL.

    Examples:
        Load a stored inbox and read the latest inbound messages:
        ```python
        from prefect_blocks import RelayWebhookInbox
        relay_webhook_inbox_block = RelayWebhookInbox.load("BLOCK_NAME")
        events = relay_webhook_inbox_block.get_inbox().query(kind="inbound")
        ```
    """

    _block_type_name = "Relay Webhook Inbox"
    _block_type_slug = "relay-webhook-inbox"
    _documentation_url = HttpUrl(DOCUMENTATION_URL)
    _description = "Where a relay's verified webhook events are stored (SQLite path or receiver URL)."

    location: str = Field(
        default=...,
        title="Location",
        description="Path of the inbox database, or the webhook receiver's base URL (http://...).",
        examples=["/var/lib/relay/webhooks.db", "http://127.0.0.1:8788"],
    )
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="The webhook receiver's API key, needed when the location is a URL.",
    )

    @property
    def is_remote(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    def get_inbox(self) -> WebhookInbox:
        """The inbox, local or remote, ready to query or wait on."""
        if self.is_remote and self.api_key is None:
            raise ValueError("RelayWebhookInbox.api_key is required when location is a URL")
        return WebhookInbox.at(self.location, self.api_key.get_secret_value() if self.api_key else None)
