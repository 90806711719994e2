"""Prefect 3 blocks, tasks and a ready flow for sending messages through message relays.

Blocks (registered with ``prefect block register -m prefect_blocks``):

* :class:`RelayCredentials` -- where a relay is and how to authenticate; hands out clients.
* :class:`RelayNotification` -- a notification block for automations (SMS, WhatsApp, Telegram...).
* :class:`RelayWebhookInbox` -- where the relay's verified webhook events are stored.

Tasks live in :mod:`prefect_blocks.tasks`, the ready flow in :mod:`prefect_blocks.flows`.
"""

from prefect_blocks.credentials import RelayCredentials, RelayWebhookInbox
from prefect_blocks.notifications import RelayNotification

__version__ = "0.1.0"

__all__ = ["RelayCredentials", "RelayNotification", "RelayWebhookInbox", "__version__"]
