"""Webhook receiver and inbox: verified, durable, queryable relay events.

``WebhookInbox``/``EventFilter`` need only the core; ``create_receiver_app`` needs the ``server``
extra (Starlette, uvicorn) and is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox, WebhookInboxError, WebhookWaitTimeout

if TYPE_CHECKING:
    from relay_integrations.webhooks.receiver import create_receiver_app

__all__ = ["EventFilter", "WebhookInbox", "WebhookInboxError", "WebhookWaitTimeout", "create_receiver_app"]


def __getattr__(name: str) -> Any:
    if name == "create_receiver_app":
        return import_module("relay_integrations.webhooks.receiver").create_receiver_app
    raise AttributeError(f"module 'relay_integrations.webhooks' has no attribute {name!r}")
