"""Helpers of the reliability tests: recipients, clients, and what the relay really stored."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.campaign import Campaign, CampaignReport
from relay_integrations.client import AsyncRelayClient, RelayClient
from relay_integrations.process import ReferenceRelayProcess

SENDER = "+1987654321"
CLIENT_KWARGS: dict[str, Any] = {"login": "relay", "phone_id": "phone_main", "sender": SENDER}
TEMPLATE = "Hi {{ name }}, your order {{ order }} ships today."


def numbers(n: int, *, block: int) -> list[str]:
    """``n`` distinct possible US numbers, none ending in 0000 (the relay fails those on purpose)."""
    out: list[str] = []
    i = 1
    while len(out) < n:
        number = f"+1646{block:02d}{i:05d}"
        i += 1
        if not number.endswith("0000"):
            out.append(number)
    return out


def people(addresses: Iterable[str]) -> list[dict[str, str]]:
    return [{"phone": a, "name": f"Customer {i}", "order": f"R{i:05d}"} for i, a in enumerate(addresses, 1)]


def write_csv(path: Path, addresses: Iterable[str]) -> Path:
    rows = people(addresses)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["phone", "name", "order"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def client(base_url: str, dialect: str, api_key: str, **kwargs: Any) -> RelayClient:
    return RelayClient(base_url, dialect, api_key, **{**CLIENT_KWARGS, **kwargs})


def async_client(base_url: str, dialect: str, api_key: str, **kwargs: Any) -> AsyncRelayClient:
    return AsyncRelayClient(base_url, dialect, api_key, **{**CLIENT_KWARGS, **kwargs})


def stored_outbound(relay: ReferenceRelayProcess, dialect: str) -> list[dict[str, Any]]:
    """Every outbound message the relay stored for ``dialect``, read from the relay itself (``GET /_sim/messages``)."""
    answer = httpx.get(
        f"{relay.base_url}/_sim/messages",
        params={"dialect": dialect, "direction": "outbound", "limit": 100_000},
        headers={"Authorization": f"Bearer {relay.api_key}"},
        timeout=60,
    )
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def messages_per_address(relay: ReferenceRelayProcess, dialect: str, addresses: Iterable[str]) -> Counter[str]:
    """How many stored messages each address holds (smsgate stores many recipients comma-joined in one)."""
    wanted = set(addresses)
    counts: Counter[str] = Counter({a: 0 for a in wanted})
    strays = 0
    for message in stored_outbound(relay, dialect):
        for address in (message.get("to") or "").split(","):
            if address in wanted:
                counts[address] += 1
            elif address:
                strays += 1
    counts["<not a recipient>"] = strays
    return counts


def exactly_once(relay: ReferenceRelayProcess, dialect: str, addresses: list[str]) -> tuple[int, int, int]:
    """``(missing, duplicated, strays)``: recipients with no message, with more than one, and messages to others."""
    counts = messages_per_address(relay, dialect, addresses)
    strays = counts.pop("<not a recipient>")
    missing = sum(1 for a in addresses if counts[a] == 0)
    duplicated = sum(1 for a in addresses if counts[a] > 1)
    return missing, duplicated, strays


def run_until_complete(
    make_campaign: Any, send_client: RelayClient, *, max_runs: int
) -> tuple[int, list[CampaignReport]]:
    """Run the campaign, and again while rows failed (the product's promise: a re-run sends only what is missing).

    :return: how many runs it took and every run's report.
    """
    reports: list[CampaignReport] = []
    for run in range(1, max_runs + 1):
        campaign: Campaign = make_campaign()
        report = campaign.send(send_client)
        reports.append(report)
        if report.counts["failed"] == 0:
            return run, reports
    return max_runs, reports
