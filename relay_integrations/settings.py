"""How to reach a relay, validated once for every way in: the Airflow connection, the Prefect block
and the command line.

Each adapter reads its own source (a connection's fields and extras, a block's fields, flags and
``RELAY_*`` variables) into :class:`RelaySettings`; the rules (which dialects exist, what a base URL
may look like, which numbers are allowed) and the client construction live here. A bad value is a
:class:`SettingsError` naming the field in the core's terms; each adapter renames the field to what
its user sees (``extra.timeout`` on a connection, ``--timeout`` on the command line).

The API keys are ``SecretStr``: never in a repr, an error or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from relay_integrations.dialects import DIALECT_NAMES

if TYPE_CHECKING:
    from relay_integrations.client import AsyncRelayClient, RelayClient

DialectName = Literal["phonerelay", "relaysms", "coop", "smsgate"]


class SettingsError(ValueError):
    """A setting is missing or wrong. ``field`` is the core's name for it; the message holds no secret."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def check_base_url(value: str) -> str:
    """An absolute http(s) URL without user info (a credential does not belong in a URL)."""
    url = str(value).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL, e.g. http://127.0.0.1:8080/phonerelay")
    if "@" in parts.netloc:
        # Not echoed back: the user-info part is a credential.
        raise ValueError("must not contain credentials; give the API key (and login for smsgate) on their own")
    return url


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class RelaySettings(BaseModel):
    """One relay's address and credentials, and the defaults of its client.

    :param base_url: the relay's address, with or without the doc's base path.
    :param dialect: which documented API it speaks.
    :param api_key: its API key (smsgate: the password).
    :param login: smsgate's login.
    :param phone_id: default phone for sends that name none (phonerelay).
    :param sender: default sender number or name.
    :param timeout: seconds for one request's answer (> 0).
    :param max_retries: repeats of a request after transient failures (>= 0).
    :param webhook_inbox: where the webhook receiver's events are read: its URL, a database URL or an
        SQLite path.
    :param webhook_inbox_api_key: the receiver's own API key (a receiver URL needs it; the relay's key
        is never sent to the receiver).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    base_url: str
    dialect: DialectName
    api_key: SecretStr
    login: str | None = None
    phone_id: str | None = None
    sender: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    webhook_inbox: str | None = None
    webhook_inbox_api_key: SecretStr | None = None

    @field_validator("base_url", "login", "phone_id", "sender", "webhook_inbox", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("api_key", "webhook_inbox_api_key", mode="before")
    @classmethod
    def _strip_secret(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return _blank_to_none(value)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_base_url(value)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RelaySettings:
        """Validate ``values`` (blank and ``None`` values fall back to the defaults).

        :raises SettingsError: the first problem, naming its field; the secret is never in it.
        """
        given = {k: v for k, v in values.items() if _blank_to_none(v) is not None}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise settings_error(exc) from None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~relay_integrations.client.RelayClient` and its async twin."""
        return {
            "base_url": self.base_url,
            "dialect": self.dialect,
            "api_key": self.api_key,
            "login": self.login,
            "phone_id": self.phone_id,
            "sender": self.sender,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def client(self) -> RelayClient:
        """A new blocking client; use it as a context manager so its connections close."""
        from relay_integrations.client import RelayClient

        return RelayClient(**self.client_kwargs())

    def async_client(self) -> AsyncRelayClient:
        """A new async client; use it with ``async with``."""
        from relay_integrations.client import AsyncRelayClient

        return AsyncRelayClient(**self.client_kwargs())


def settings_error(exc: ValidationError) -> SettingsError:
    """The first problem of a validation error, by field, in words (no input value is echoed)."""
    first = exc.errors(include_input=False)[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    if first["type"] == "missing":
        return SettingsError(field, "required")
    if first["type"] == "literal_error" and field == "dialect":
        return SettingsError(field, f"unknown dialect; expected one of {', '.join(DIALECT_NAMES)}")
    message = str(first["msg"]).removeprefix("Value error, ")
    return SettingsError(field, message)
