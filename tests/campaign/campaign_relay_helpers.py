"""Helpers for campaign tests against the reference relay process."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from relay_integrations.client import AsyncRelayClient, RelayClient
from relay_integrations.process import ReferenceRelayProcess

DIALECTS = ("phonerelay", "relaysms", "coop", "smsgate")
SENDER = "+1987654321"
CLIENT_KWARGS: dict[str, Any] = {"login": "relay", "phone_id": "phone_main", "sender": SENDER}

#: Generous: CI shares two cores between two suites; a wait returns as soon as its condition holds.
WAIT = 60.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition`` until it is truthy (returned), or fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# Every call gets numbers no other test uses: one session relay serves the whole suite.
_blocks = itertools.count(random.randint(200, 700))


def numbers(n: int) -> list[str]:
    """``n`` fresh, possible US numbers (none ending in 0000, which the relay fails on purpose)."""
    block = next(_blocks)
    assert n < 9999
    return [f"+1312{block:03d}{i:04d}" for i in range(1, n + 1)]


def client_for(relay: ReferenceRelayProcess, dialect: str, *, api_key: str | None = None, **kwargs: Any) -> RelayClient:
    return RelayClient(relay.url(dialect), dialect, api_key or relay.api_key, **{**CLIENT_KWARGS, **kwargs})


def async_client_for(relay: ReferenceRelayProcess, dialect: str, **kwargs: Any) -> AsyncRelayClient:
    return AsyncRelayClient(relay.url(dialect), dialect, relay.api_key, **{**CLIENT_KWARGS, **kwargs})


def stored_messages(relay: ReferenceRelayProcess, dialect: str) -> list[dict[str, Any]]:
    """Every outbound message the relay stored for ``dialect`` (GET /_sim/messages)."""
    answer = httpx.get(
        f"{relay.base_url}/_sim/messages",
        params={"dialect": dialect, "direction": "outbound", "limit": 100_000},
        headers={"Authorization": f"Bearer {relay.api_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def recipients_of(message: dict[str, Any]) -> list[str]:
    # smsgate stores one message for many phone numbers, comma-joined.
    return [a for a in (message.get("to") or "").split(",") if a]


def messages_per_address(relay: ReferenceRelayProcess, dialect: str, addresses: Iterable[str]) -> Counter[str]:
    """How many stored messages each of ``addresses`` received."""
    wanted = set(addresses)
    counts: Counter[str] = Counter({a: 0 for a in wanted})
    for message in stored_messages(relay, dialect):
        for address in recipients_of(message):
            if address in wanted:
                counts[address] += 1
    return counts


def texts_by_address(relay: ReferenceRelayProcess, dialect: str, addresses: Iterable[str]) -> dict[str, str]:
    wanted = set(addresses)
    out: dict[str, str] = {}
    for message in stored_messages(relay, dialect):
        for address in recipients_of(message):
            if address in wanted:
                out[address] = message["text"]
    return out


def ids_by_address(relay: ReferenceRelayProcess, dialect: str, addresses: Iterable[str]) -> dict[str, str]:
    wanted = set(addresses)
    out: dict[str, str] = {}
    for message in stored_messages(relay, dialect):
        for address in recipients_of(message):
            if address in wanted:
                out[address] = message["id"]
    return out
