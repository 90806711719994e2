"""Opt-outs at the webhook receiver: inbound STOP/START replies become suppression-list entries.

The receiver records them before it stores the delivery's events and answers the relay (a delivery
whose opt-out could not be recorded gets a 500, so the relay delivers it again; recording is safe to
repeat), so a STOP that can be read in the inbox is already on the list. Then, when the
user configured a confirmation text, answers each new opt-out once, after the answer, from a
background task. "Once" holds across repeated deliveries, several receivers and restarts: the entry
is moved from ``pending`` to ``sending`` by one atomic update before the request, and the
confirmation carries an idempotency key derived from the opt-out itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import anyio.to_thread

from relay_integrations.campaign.suppression import Change, SuppressionList
from relay_integrations.client import AsyncRelayClient
from relay_integrations.errors import RelayError
from relay_integrations.idempotency import key_to_uuid
from relay_integrations.models import OutboundMessage, WebhookEvent

logger = logging.getLogger("relay_integrations.webhooks")


class OptOutRecorder:
    """Records the opt-outs and opt-ins among stored inbound events for one relay account.

    :param suppressions: the account's list (its identity names the relay the replies came to).
    :param confirmation: the text answered to a new opt-out (None: no answer).
    :param client_factory: makes the client that sends the confirmation (needed with ``confirmation``).
    """

    def __init__(self, suppressions: SuppressionList, *, confirmation: str | None = None,
                 client_factory: Callable[[], AsyncRelayClient] | None = None) -> None:
        if confirmation is not None and not confirmation.strip():
            raise ValueError("opt-out confirmation: empty text")
        if confirmation is not None and client_factory is None:
            raise ValueError("opt-out confirmation: needs the relay's connection to send it")
        self.suppressions = suppressions
        self.confirmation = confirmation
        self._client_factory = client_factory
        self._client: AsyncRelayClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"OptOutRecorder({self.suppressions!r})"

    def wants(self, events: Sequence[WebhookEvent]) -> bool:
        """Whether the delivery holds an opt-out or opt-in (checked on the event loop, no I/O): only
        then does recording take a worker thread and a transaction."""
        return bool(self.suppressions.keyword_replies(events))

    async def record(self, events: Sequence[WebhookEvent]) -> list[Change]:
        """Record the delivery's keyword replies (in a worker thread); new opt-outs are confirmed soon."""
        changes: list[Change] = await anyio.to_thread.run_sync(
            lambda: self.suppressions.apply_replies(events, confirm=self.confirmation is not None))
        for change in changes:
            if change.changed:
                logger.info("%s %s (reply %s)", "opted out:" if change.suppressed else "opted back in:",
                            change.address, change.event_id)
            if change.confirm:
                task = asyncio.ensure_future(self._confirm(change))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return changes

    async def resume(self) -> None:
        """Send the confirmations a receiver that stopped left pending (called at start-up)."""
        if self.confirmation is None:
            return
        for address in await anyio.to_thread.run_sync(self.suppressions.pending_confirmations):
            await self._confirm(Change(address, True, True, "", confirm=True))

    async def _confirm(self, change: Change) -> None:
        assert self.confirmation is not None and self._client_factory is not None
        listed = self.suppressions
        if not await anyio.to_thread.run_sync(listed.claim_confirmation, change.address):
            return  # another receiver (or an earlier delivery) has it
        key = key_to_uuid("\x1f".join(("opt-out-confirmation", listed.relay.relay_id, change.address,
                                       change.event_id)))
        message = OutboundMessage(to=change.address, text=self.confirmation, idempotency_key=key)
        message_id: str | None = None
        failed = False
        try:
            if self._client is None:
                self._client = self._client_factory()
            receipt = await self._client.send(message)
            message_id = receipt.message_id
            logger.info("sent the opt-out confirmation to %s (message %s)", change.address, message_id)
        except RelayError as exc:
            # Never sent twice: an answer that may have reached the relay stays "sending".
            failed = not exc.maybe_sent
            logger.warning("could not send the opt-out confirmation to %s: %s", change.address, exc)
            if not failed:
                return
        await anyio.to_thread.run_sync(lambda: listed.confirmation_done(change.address, message_id=message_id,
                                                                        failed=failed))

    async def aclose(self) -> None:
        """Let confirmations in flight finish (at most 30 s), then close the client and the list."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await anyio.to_thread.run_sync(self.suppressions.close)
