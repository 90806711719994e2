"""Forward a relay's webhook events to Prefect as Prefect events, so automations and deployment
triggers react to relay traffic.

Self-hosted Prefect has no webhook endpoint of its own, so the relay posts to ``relay webhooks
serve`` (which verifies and stores every event) and this bridge reads the receiver's inbox and
emits one Prefect event per webhook event:

=========================  ===============================================================
Prefect event              when
=========================  ===============================================================
``relay.message.<state>``  a status webhook: ``queued``, ``sending``, ``sent``, ``delivered``,
                           ``failed``, ``cancelled``
``relay.message.received`` an inbound message (a reply)
``relay.call.<type>``      an inbound call event (phonerelay: ``call``, ``missed``, ``answered``)
``relay.webhook.<type>``   anything else the relay posts
=========================  ===============================================================

The resource is ``relay.message.<message id>`` (labels ``relay.dialect``, ``relay.state``,
``relay.sender``, ``relay.recipient``); the payload is the parsed webhook event. Each Prefect
event id is derived from the webhook event id, so re-forwarding the same event (after a crash
between emitting and saving the cursor) is recognised by Prefect as the same event.

Run it next to the receiver (``PREFECT_API_URL`` set; the receiver's API key, for a URL inbox,
in ``RELAY_INBOX_API_KEY``)::

    python -m prefect_blocks.events --inbox /var/lib/relay/webhooks.db --cursor-file bridge.cursor
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.events import emit_event
from prefect.events.clients import get_events_client
from prefect.events.schemas.events import Event, RelatedResource, Resource
from prefect.events.utilities import should_emit_events
from prefect.events.worker import EventsWorker
from pydantic import SecretStr

from prefect_blocks.credentials import RelayWebhookInbox
from relay_integrations.models import WebhookEvent
from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox

logger = logging.getLogger("prefect_blocks.events")

# Namespace of the Prefect event ids derived from webhook event ids (fixed forever: changing it
# would make Prefect see every replayed event as new).
EVENT_ID_NAMESPACE = uuid.UUID("6f1e4c2a-58c4-4b1e-9a57-1f0c3e2d7b90")
CALL_EVENT_TYPES = frozenset({"call", "missed", "answered"})
PAGE_SIZE = 500


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def prefect_event_name(event: WebhookEvent) -> str:
    """The Prefect event name for a webhook event (see the module's table)."""
    if event.kind == "status" and event.state is not None:
        return f"relay.message.{event.state.value}"
    if event.kind == "inbound":
        if event.event_type in CALL_EVENT_TYPES:
            return f"relay.call.{event.event_type}"
        return "relay.message.received"
    return f"relay.webhook.{_slug(event.event_type)}"


def prefect_event_id(event: WebhookEvent) -> uuid.UUID:
    """A UUID that is the same every time the same webhook event is forwarded."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{event.dialect}:{event.event_id}")


def to_prefect_event(event: WebhookEvent) -> Event:
    """The Prefect event for one stored webhook event."""
    subject = event.message_id or event.event_id
    labels = {
        "prefect.resource.id": f"relay.message.{subject}",
        "prefect.resource.name": f"{event.dialect} message {subject}",
        "relay.dialect": event.dialect,
        "relay.kind": event.kind,
        "relay.event-type": event.event_type,
    }
    optional = {"relay.state": event.state.value if event.state else None, "relay.sender": event.sender,
                "relay.recipient": event.recipient}
    labels.update({k: v for k, v in optional.items() if v})
    related = [RelatedResource({"prefect.resource.id": f"relay.dialect.{event.dialect}",
                                "prefect.resource.role": "relay"})]
    occurred = event.occurred_at or event.received_at
    fields: dict[str, Any] = {}
    if occurred is not None:
        fields["occurred"] = occurred
    return Event(
        event=prefect_event_name(event),
        resource=Resource(labels),
        related=related,
        payload=event.model_dump(mode="json", exclude={"raw"}),
        id=prefect_event_id(event),
        **fields,
    )


def _open(inbox: WebhookInbox | RelayWebhookInbox | str) -> tuple[WebhookInbox, bool]:
    """The inbox, and whether this module opened it (and must close it)."""
    if isinstance(inbox, WebhookInbox):
        return inbox, False
    if isinstance(inbox, RelayWebhookInbox):
        return inbox.get_inbox(), True
    return WebhookInbox(inbox), True


def _check_emitting() -> None:
    if not should_emit_events():
        raise RuntimeError("Prefect events cannot be emitted here: set PREFECT_API_URL to the Prefect server's API")


def _first_page(after: int | None, match: EventFilter | Mapping[str, Any] | None) -> EventFilter:
    return EventFilter.coerce(match, after=after, limit=PAGE_SIZE)


async def aforward_webhook_events(
    inbox: WebhookInbox | RelayWebhookInbox | str,
    after: int | None = None,
    match: EventFilter | Mapping[str, Any] | None = None,
) -> int | None:
    """Emit a Prefect event for every inbox event after cursor ``after`` (async twin).

    Each emit is awaited on the events websocket, so when this returns every event is with Prefect.
    """
    _check_emitting()
    # Opened in a worker thread: a local inbox creates its tables when opened.
    opened, owned = await anyio.to_thread.run_sync(_open, inbox)
    cursor = after
    try:
        async with get_events_client() as client:
            page = _first_page(after, match)
            while True:
                events = await opened.aquery(page)
                for event in events:
                    await client.emit(to_prefect_event(event))
                    cursor = event.cursor
                if len(events) < page.limit:
                    return cursor
                page = page.model_copy(update={"after": cursor})
    finally:
        if owned:
            await opened.aclose()


@async_dispatch(aforward_webhook_events)
def forward_webhook_events(
    inbox: WebhookInbox | RelayWebhookInbox | str,
    after: int | None = None,
    match: EventFilter | Mapping[str, Any] | None = None,
) -> int | None:
    """Emit a Prefect event (``emit_event``) for every inbox event after cursor ``after``.

    :param inbox: a :class:`WebhookInbox`, a :class:`~prefect_blocks.RelayWebhookInbox` block, or
        the path of the receiver's SQLite inbox.
    :param after: the cursor returned by the previous call; None starts from the first event.
    :param match: only events matching this filter (``{"kind": "inbound"}``...).
    :return: the cursor of the last event forwarded (``after`` when there was none): pass it next time.
    :raises RuntimeError: Prefect events cannot be emitted (no ``PREFECT_API_URL``).
    """
    _check_emitting()
    opened, owned = _open(inbox)
    cursor = after
    try:
        page = _first_page(after, match)
        while True:
            events = opened.query(page)
            for event in events:
                prefect_event = to_prefect_event(event)
                emit_event(
                    event=prefect_event.event,
                    resource=dict(prefect_event.resource.root),
                    related=[dict(r.root) for r in prefect_event.related],
                    payload=prefect_event.payload,
                    occurred=prefect_event.occurred,
                    id=prefect_event.id,
                )
                cursor = event.cursor
            if len(events) < page.limit:
                break
            page = page.model_copy(update={"after": cursor})
    finally:
        if owned:
            opened.close()
    # emit_event queues to a background worker; wait until it has sent them.
    EventsWorker.drain_all()
    return cursor


# --- the long-running bridge -------------------------------------------------------------------


def _read_cursor(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    text = path.read_text().strip()
    return int(text) if text else None


def _write_cursor(path: Path | None, cursor: int | None) -> None:
    if path is None or cursor is None:
        return
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(str(cursor))
    os.replace(scratch, path)  # atomic: a crash leaves the old cursor or the new one


def run_event_bridge(
    inbox: WebhookInbox | RelayWebhookInbox | str,
    *,
    cursor_file: str | os.PathLike[str] | None = None,
    poll_interval: float = 1.0,
    match: EventFilter | Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    once: bool = False,
) -> int | None:
    """Forward inbox events to Prefect until ``stop`` is set (or once, with ``once``).

    The cursor is saved to ``cursor_file`` after each batch, so a restarted bridge resumes where it
    stopped; an event forwarded again after a crash keeps its Prefect event id.

    :return: the last cursor forwarded.
    """
    path = Path(cursor_file) if cursor_file else None
    cursor = _read_cursor(path)
    opened, owned = _open(inbox)
    try:
        while True:
            # The sync implementation itself, whatever the calling thread runs (no private ``_sync``).
            forward = forward_webhook_events.__wrapped__  # type: ignore[attr-defined]
            new_cursor: int | None = forward(opened, after=cursor, match=match)
            if new_cursor != cursor:
                logger.info("forwarded webhook events up to cursor %s", new_cursor)
                cursor = new_cursor
                _write_cursor(path, cursor)
            if once or (stop is not None and stop.wait(poll_interval)):
                return cursor
            if stop is None:
                time.sleep(poll_interval)
    finally:
        if owned:
            opened.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prefect_blocks.events",
        description="Forward a relay webhook inbox to Prefect events. The receiver's API key (for a URL "
                    "inbox) is read from RELAY_INBOX_API_KEY; Prefect's address from PREFECT_API_URL.",
    )
    parser.add_argument("--inbox", required=True, help="the receiver's SQLite inbox path, or its base URL")
    parser.add_argument("--cursor-file", help="where to keep the last forwarded cursor between runs")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between looks at the inbox")
    parser.add_argument("--once", action="store_true", help="forward what is there and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # httpx logs every request at INFO: one line per poll of the inbox, every second, says nothing.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    api_key = os.environ.get("RELAY_INBOX_API_KEY")
    block = RelayWebhookInbox(location=args.inbox, api_key=SecretStr(api_key) if api_key else None)
    try:
        run_event_bridge(block, cursor_file=args.cursor_file, poll_interval=args.poll_interval, once=args.once)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
