"""Send and track messages through message relays from data pipelines.

The public surface, importable from here::

    from relay_integrations import RelayClient, AsyncRelayClient, OutboundMessage, Campaign, WebhookInbox
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Imported on first use so that `import relay_integrations` stays cheap and needs no optional extra.
_EXPORTS = {
    "RelayClient": "relay_integrations.client",
    "AsyncRelayClient": "relay_integrations.client",
    "Campaign": "relay_integrations.campaign",
    "CampaignReport": "relay_integrations.campaign",
    "CampaignValidationError": "relay_integrations.campaign",
    "SuppressionList": "relay_integrations.campaign",
    "WebhookInbox": "relay_integrations.webhooks.inbox",
    "EventFilter": "relay_integrations.webhooks.inbox",
    "get_dialect": "relay_integrations.dialects",
    "DIALECT_NAMES": "relay_integrations.dialects",
}
_MODEL_NAMES = (
    "MessageState", "OutboundMessage", "SendReceipt", "StatusReport", "RecipientState", "TimelineEntry",
    "BatchReceipt", "BatchItemResult", "BatchProgress", "MessagePage", "MessageSummary", "InboundStats",
    "InboundQuery", "WebhookEvent",
)
_ERROR_NAMES = (
    "RelayError", "RelayAuthError", "RelayValidationError", "RelayNotFoundError", "RelayConflictError",
    "RelayInsufficientBalanceError", "RelayRateLimitError", "RelayUnavailableError", "RelayConnectionError",
    "RelayTimeoutError", "RelayServerError", "UnsupportedOperationError",
)
_EXPORTS.update({n: "relay_integrations.models" for n in _MODEL_NAMES})
_EXPORTS.update({n: "relay_integrations.errors" for n in _ERROR_NAMES})

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from relay_integrations.campaign import Campaign, CampaignReport, CampaignValidationError
    from relay_integrations.client import AsyncRelayClient, RelayClient
    from relay_integrations.dialects import DIALECT_NAMES, get_dialect
    from relay_integrations.errors import *  # noqa: F403
    from relay_integrations.models import *  # noqa: F403
    from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relay_integrations' has no attribute {name!r}")
    return getattr(import_module(module), name)
