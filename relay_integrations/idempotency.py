"""Idempotency keys: one scheme for every key we derive.

A key is a UUID-shaped SHA-256 of its parts (:func:`derive_key`): deterministic, 36 characters, and
accepted wherever a relay takes a client id (phonerelay's ``idempotency_key``, smsgate's message
``id``). Campaign rows, smsgate recipient groups, the Airflow operator's and notifier's sends and the
Prefect send task all derive their keys through it; only the parts differ.

The campaign row key is stored in every ledger, so its derivation never changes: a ledger written by an
earlier release must still answer for its rows (a test pins a key).
"""

from __future__ import annotations

import hashlib
import json

from relay_integrations.models import OutboundMessage

#: Joins the parts of a key: a character no id, address or text we key on contains.
SEPARATOR = "\x1f"


def key_to_uuid(material: str) -> str:
    """A deterministic UUID-shaped key (36 chars, accepted wherever a relay takes client ids).

    ``str(uuid.UUID(bytes=sha256(material)[:16], version=5))``, with the version and variant bits
    set on the bytes directly (called once per recipient row; uuid.UUID is the slow part).
    """
    raw = bytearray(hashlib.sha256(material.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derive_key(*parts: str) -> str:
    """The key of ``parts`` (joined by :data:`SEPARATOR`): the same parts give the same key anywhere."""
    return key_to_uuid(SEPARATOR.join(parts))


def campaign_row_key(campaign_id: str, address: str, content: str) -> str:
    """A campaign row's key, as every ledger stores it: campaign id, address and the row's content."""
    return derive_key(campaign_id, address, content)


def message_fingerprint(message: OutboundMessage) -> str:
    """What a message says and to whom, as stable text (its own key and secrets left out): two sends
    of the same content from one task call share a key, different content never does."""
    content = message.model_dump(mode="json", exclude={"idempotency_key", "bot_token"}, by_alias=True)
    return json.dumps(content, sort_keys=True, default=str)


def single_send_key(runner: str, *where: str, message: OutboundMessage | None = None) -> str:
    """The key of a single send from a task runner: the same on every retry of the same work.

    :param runner: who sends (``airflow``, ``prefect``), so two runners never share a key.
    :param where: what a retry keeps: Airflow's dag/run/task/map index, Prefect's flow run and task call.
    :param message: the message, when one task call may send several different ones (Prefect).
    """
    parts = [runner, *where]
    if message is not None:
        parts.append(message_fingerprint(message))
    return derive_key(*parts)
