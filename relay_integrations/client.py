"""Synchronous and asynchronous clients for the documented relays, on httpx.

::

    from relay_integrations import OutboundMessage, RelayClient

    with RelayClient("http://127.0.0.1:8080/phonerelay", "phonerelay", api_key, phone_id="phone_main") as client:
        receipt = client.send(OutboundMessage(to="+15551234567", text="hello"))
        print(client.get_status(receipt.message_id).state)

Both clients run the same flows (:mod:`relay_integrations._operations`): the dialect builds each
request and parses each answer, :class:`~relay_integrations._retry.RetryPolicy` decides about
retries; the clients only execute. Errors are always :class:`~relay_integrations.errors.RelayError`
subclasses, and no text this module produces (reprs, exceptions, logs) contains a credential.

The client is written once, async (:mod:`relay_integrations._async.client`); the sync client
(:mod:`relay_integrations._sync.client`) is generated from it by ``scripts/generate_sync.py``.
"""

from __future__ import annotations

from relay_integrations._async.client import AsyncRelayClient
from relay_integrations._sync.client import RelayClient

__all__ = ["AsyncRelayClient", "RelayClient"]
