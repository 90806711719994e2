"""Templated campaigns: one template, many recipients, validated first, sent once.

    from relay_integrations import Campaign, RelayClient

    campaign = Campaign("Hi {{ name }}, your order {{ order }} has shipped.", "customers.csv",
                        campaign_id="shipping-2026-05-17", default_region="US")
    with RelayClient(base_url, "phonerelay", api_key) as client:
        report = campaign.send(client)
    print(report.counts)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Loaded on first use, so that `relay serve` (which imports this package's cli) skips jinja2 & co.
_EXPORTS = {
    "Campaign": "relay_integrations.campaign.campaign",
    "CampaignProgress": "relay_integrations.campaign.report",
    "CampaignReport": "relay_integrations.campaign.report",
    "CampaignValidationError": "relay_integrations.campaign.report",
    "ValidationReport": "relay_integrations.campaign.report",
    "SendWindow": "relay_integrations.campaign.send_window",
    "SuppressionList": "relay_integrations.campaign.suppression",
}

__all__ = ["Campaign", "CampaignProgress", "CampaignReport", "CampaignValidationError", "SendWindow", "SuppressionList",
           "ValidationReport"]

if TYPE_CHECKING:
    from relay_integrations.campaign.campaign import Campaign
    from relay_integrations.campaign.report import (
        CampaignProgress,
        CampaignReport,
        CampaignValidationError,
        ValidationReport,
    )
    from relay_integrations.campaign.send_window import SendWindow
    from relay_integrations.campaign.suppression import SuppressionList


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relay_integrations.campaign' has no attribute {name!r}")
    return getattr(import_module(module), name)
