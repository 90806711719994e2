"""Templated campaigns: one template, many recipients, validated first, sent once.

    from relay_integrations import Campaign, RelayClient

    campaign = Campaign("Hi {{ name }}, your order {{ order }} has shipped.", "customers.csv",
                        campaign_id="shipping-2026-05-17", default_region="US")
    with RelayClient(base_url, "phonerelay", api_key) as client:
        report = campaign.send(client)
    print(report.counts)
"""

from __future__ import annotations

from relay_integrations.campaign.campaign import Campaign
from relay_integrations.campaign.report import (
    CampaignProgress,
    CampaignReport,
    CampaignValidationError,
    ValidationReport,
)

__all__ = ["Campaign", "CampaignProgress", "CampaignReport", "CampaignValidationError", "ValidationReport"]
