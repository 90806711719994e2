"""Where a campaign's ledger lives by default, and the names the ledger had before the store.

The ledger itself is the campaign store (:mod:`relay_integrations.campaign.campaign_store`): an
SQLite file per campaign by default, or a shared PostgreSQL database for many workers.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from relay_integrations.campaign.campaign_store import CampaignStore, LedgerEntry, RelayIdentity

LEDGER_DIR_ENV = "RELAY_CAMPAIGN_LEDGER_DIR"

__all__ = ["LEDGER_DIR_ENV", "CampaignStore", "LedgerEntry", "RelayIdentity", "default_ledger_path"]


def default_ledger_path(campaign_id: str) -> Path:
    """Where a campaign's ledger lives unless told otherwise.

    ``$RELAY_CAMPAIGN_LEDGER_DIR``, else the user cache directory (``$XDG_CACHE_HOME`` or
    ``~/.cache``)``/relay-integrations/campaigns``. The file name is the campaign id made
    filesystem-safe plus a short hash of the exact id, so distinct ids never share a file.
    A file is local to one machine: for retries on other workers use a PostgreSQL URL.
    """
    base = os.environ.get(LEDGER_DIR_ENV)
    if base:
        directory = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        directory = Path(cache) / "relay-integrations" / "campaigns"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", campaign_id).strip("-.")[:60] or "campaign"
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:8]
    return directory / f"{slug}-{digest}.sqlite"
