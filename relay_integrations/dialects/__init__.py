"""The documented relay APIs, one module each. ``get_dialect(name)`` returns a dialect instance."""

from __future__ import annotations

from importlib import import_module

from relay_integrations.dialects.base import Capabilities, Dialect, Endpoint, RelayRequest

DIALECT_NAMES: tuple[str, ...] = ("phonerelay", "relaysms", "coop", "smsgate")


def get_dialect(name: str | Dialect) -> Dialect:
    """The dialect called ``name`` (one of :data:`DIALECT_NAMES`), or ``name`` itself if it is one."""
    if isinstance(name, Dialect):
        return name
    if name not in DIALECT_NAMES:
        raise ValueError(f"unknown dialect {name!r}; expected one of {', '.join(DIALECT_NAMES)}")
    module = import_module(f"relay_integrations.dialects.{name}")
    dialect: Dialect = module.DIALECT
    return dialect


__all__ = ["DIALECT_NAMES", "Capabilities", "Dialect", "Endpoint", "RelayRequest", "get_dialect"]
