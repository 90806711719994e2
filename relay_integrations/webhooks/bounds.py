"""Bounds the receiver puts on a delivery before anything is stored, so whatever it stores it can read back.

Checked at the edge, each failure a :class:`BoundError` naming the field (answered with 400):

* JSON nesting at most :data:`MAX_JSON_DEPTH` levels (deeper documents broke the readers: the
  JSON parsers and pydantic stop at a recursion limit of their own);
* at most :data:`MAX_EVENTS_PER_DELIVERY` events in one delivery;
* ids and addresses at most :data:`MAX_ID_CHARS` characters, texts at most :data:`MAX_TEXT_CHARS`;
* no NUL characters or lone surrogates in the indexed fields (PostgreSQL text cannot hold NUL,
  and neither backend can encode a lone surrogate);
* each event serialised and parsed back once, exactly as the store and its readers will.

The body size is bounded before it is read (413, see the receiver).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from relay_integrations.models import WebhookEvent

MAX_JSON_DEPTH = 32
MAX_EVENTS_PER_DELIVERY = 1000
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 100_000
_ID_FIELDS = ("event_id", "dialect", "event_type", "message_id", "raw_state", "sender", "recipient")
_TEXT_FIELDS = ("text", "error")


class BoundError(ValueError):
    """A delivery is outside the receiver's bounds.

    :param field: the offending field (``body``, ``events``, ``events[2].text``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _too_deep_at(value: Any, limit: int) -> str | None:
    """The JSON path of the first value nested deeper than ``limit`` levels, else ``None`` (iterative)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                return path
            stack.extend((v, depth + 1, f"{path}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            if depth > limit:
                return path
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node))
    return None


def parse_body(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The body parsed as JSON, refusing documents nested deeper than ``max_depth`` levels.

    :raises BoundError: not JSON, or too deep.
    """
    try:
        payload = json.loads(body)
    except RecursionError:
        raise BoundError("body", f"JSON nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BoundError("body", "not valid JSON") from None
    where = _too_deep_at(payload, max_depth)
    if where is not None:
        shown = where if len(where) <= 120 else where[:117] + "..."
        raise BoundError("body", f"JSON nested deeper than {max_depth} levels (at {shown})")
    return payload


def _check_string(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise BoundError(field, f"longer than {limit} characters")
    if "\x00" in value:
        raise BoundError(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BoundError(field, "contains a lone surrogate (not valid Unicode text)") from None


def check_events(events: list[WebhookEvent]) -> None:
    """Refuse a delivery whose events the store could not hold or give back.

    :raises BoundError: naming the event and field, e.g. ``events[3].sender``.
    """
    if len(events) > MAX_EVENTS_PER_DELIVERY:
        raise BoundError("events", f"{len(events)} events in one delivery; at most {MAX_EVENTS_PER_DELIVERY}")
    for index, event in enumerate(events):
        prefix = f"events[{index}]"
        for name in _ID_FIELDS + _TEXT_FIELDS:
            value = getattr(event, name)
            if isinstance(value, str):
                _check_string(f"{prefix}.{name}", value, MAX_ID_CHARS if name in _ID_FIELDS else MAX_TEXT_CHARS)
        try:
            WebhookEvent.model_validate_json(event.model_dump_json())
        except (ValidationError, ValueError, RecursionError) as exc:
            raise BoundError(prefix, f"cannot be stored and read back ({type(exc).__name__})") from None
