"""The simulation's internal states and each dialect's own names for them.

Internally a message moves ``queued -> sending -> sent -> delivered | failed``. Each dialect shows
these under its documented names; phonerelay has no "delivered" status, so a delivered phonerelay
message stays ``sent`` and gets ``delivered_at`` (clients read sent + delivered_at as delivered).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INTERNAL_STATES = ("queued", "sending", "sent", "delivered", "failed")
FINAL_STATES = ("delivered", "failed")

RAW_STATE: Mapping[str, Mapping[str, str]] = {
    "phonerelay": {"queued": "queued", "sending": "sending", "sent": "sent", "delivered": "sent", "failed": "failed"},
    "relaysms": {"queued": "accepted", "sending": "queued", "sent": "sent", "delivered": "delivered",
                 "failed": "failed"},
    "coop": {"queued": "queued", "sending": "processing", "sent": "sent", "delivered": "delivered",
             "failed": "failed"},
    "smsgate": {"queued": "Pending", "sending": "Processed", "sent": "Sent", "delivered": "Delivered",
                "failed": "Failed"},
}

# Inbound rows are stored with this state; each dialect's list shows it under its own word.
INBOUND_STATE = "received"
RAW_INBOUND: Mapping[str, str] = {"phonerelay": "received", "relaysms": "received", "coop": "received",
                                  "smsgate": "Received"}


def raw_state(dialect: str, state: str) -> str:
    if state == INBOUND_STATE:
        return RAW_INBOUND[dialect]
    return RAW_STATE[dialect].get(state, state)


def internal_states_for(dialect: str, raw: str) -> list[str]:
    """Internal states a dialect's raw status filter selects (``delivered`` -> [delivered], ...)."""
    raw_lower = raw.lower()
    found = [s for s, name in RAW_STATE[dialect].items() if name.lower() == raw_lower]
    if raw_lower in ("received", "inbound"):
        found.append(INBOUND_STATE)
    return found


def smsgate_recipients(state: str, extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-recipient states of an smsgate message: everyone moves together until the final step."""
    out = []
    for r in extra.get("recipients", []):
        if extra.get("cancelled"):
            out.append({"phoneNumber": r["phoneNumber"], "state": "Cancelled", "error": None})
        elif state in FINAL_STATES:
            failed = bool(r.get("fail"))
            out.append({"phoneNumber": r["phoneNumber"], "state": "Failed" if failed else "Delivered",
                        "error": r.get("error") if failed else None})
        else:
            out.append({"phoneNumber": r["phoneNumber"], "state": RAW_STATE["smsgate"].get(state, "Pending"),
                        "error": None})
    return out
