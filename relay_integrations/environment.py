"""The ``RELAY_*`` environment variables, for the command line (read with pydantic-settings).

Kept apart from :mod:`relay_integrations.settings` so the Airflow hook and the Prefect block, which
never read these variables, do not import pydantic-settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


class RelayEnvironment(BaseSettings):
    """The ``RELAY_*`` environment variables the command line falls back to (flags win)."""

    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore")

    base_url: str | None = None
    dialect: str | None = None
    api_key: SecretStr | None = None
    login: str | None = None
    sender: str | None = None
    phone_id: str | None = None

    def merged(self, flags: Mapping[str, Any]) -> dict[str, Any]:
        """The flags given, and for each one not given, its environment variable."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            flag = _blank_to_none(flags.get(name))
            env = getattr(self, name)
            values[name] = flag if flag is not None else env
        values.update({k: v for k, v in flags.items() if k not in values and v is not None})
        return values
