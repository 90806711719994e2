"""Webhook receiver and inbox: verified, durable, queryable relay events.

``WebhookInbox``/``EventFilter`` need only the core; ``create_receiver_app`` needs the ``server``
extra (Starlette, uvicorn). Both are imported on first use, so ``relay --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox, WebhookInboxError, WebhookWaitTimeout
    from relay_integrations.webhooks.receiver import create_receiver_app

_EXPORTS = {
    "EventFilter": "relay_integrations.webhooks.inbox",
    "WebhookInbox": "relay_integrations.webhooks.inbox",
    "WebhookInboxError": "relay_integrations.webhooks.inbox",
    "WebhookWaitTimeout": "relay_integrations.webhooks.inbox",
    "create_receiver_app": "relay_integrations.webhooks.receiver",
}

__all__ = ["EventFilter", "WebhookInbox", "WebhookInboxError", "WebhookWaitTimeout", "create_receiver_app"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relay_integrations.webhooks' has no attribute {name!r}")
    return getattr(import_module(module), name)
