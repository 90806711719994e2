"""The phonerelay inbound query: every documented filter and section, computed from stored traffic.

Inbound events are what ``POST /_sim/inbound`` stored for phonerelay; "sent" traffic is every
phonerelay outbound message the relay accepted and has not failed (queued ones included, so a reply
counts the moment it is sent). A response to an inbound event
is the first outbound message to its source at or after it; ``has_response``,
``median_response_min`` and ``sort=slowest|fastest`` use that.
"""

from __future__ import annotations

import bisect
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from relay_integrations.server.common import WholeNumber, day_of, hour_of, invalid, iso_offset, now
from relay_integrations.server.context import RelayContext
from relay_integrations.server.events import phonerelay_event
from relay_integrations.server.states import raw_state
from relay_integrations.server.store import loads_extra

CALL_TYPES = ("call", "missed", "answered")
SortKey = Literal["newest", "oldest", "slowest", "fastest", "longest", "shortest"]
_RANGE = re.compile(r"^(\d{1,5})([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TOP_N = 10


class InboundQueryBody(BaseModel):
    """Filters of ``POST /api/v1/webchat/inbound/query`` (all optional)."""

    model_config = ConfigDict(extra="forbid")

    phone_id: str | None = None
    range: str | None = Field(None, description="e.g. 24h, 7d, 30d, today, all (default all)",
                              pattern=r"^([0-9]{1,5}[mhdw]|today|all)$")
    channels: list[str] | None = None
    event_types: list[Literal["message", "call", "missed", "answered"]] | None = None
    tags: list[str] | None = None
    tag_mode: Literal["any", "all"] = "any"
    source_contains: str | None = None
    # strict: true and "5" are not numbers in a JSON body (the GET form converts its strings first).
    min_duration_sec: float | None = Field(None, ge=0, allow_inf_nan=False, strict=True)
    max_duration_sec: float | None = Field(None, ge=0, allow_inf_nan=False, strict=True)
    has_response: StrictBool | None = None  # 0 and "yes" are not booleans
    sort: SortKey = "newest"
    limit: WholeNumber = Field(100, ge=1, le=1000)


def _number(value: str) -> Any:
    """A query string's number as a number, so the strict fields read the GET form too."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def query_from_params(params: Mapping[str, str]) -> InboundQueryBody:
    """The GET form: lists as comma-separated values (``channels=sms,wa``)."""
    data: dict[str, Any] = {}
    for key, value in params.items():
        if key in ("channels", "event_types", "tags"):
            data[key] = [v for v in value.split(",") if v]
        elif key in ("min_duration_sec", "max_duration_sec", "limit"):
            data[key] = _number(value)
        else:
            data[key] = value
    try:
        return InboundQueryBody.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "query"
        raise invalid(field, err["msg"]) from None


def range_start(value: str | None, t: float) -> float | None:
    if value is None or value == "all":
        return None
    if value == "today":
        return t - (t % 86400)
    match = _RANGE.fullmatch(value)
    if not match:
        raise invalid("range", "must look like 24h, 7d, 4w, 30m, today or all")
    return t - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _top(counter: Counter[str], key: str, n: int = TOP_N) -> list[dict[str, Any]]:
    return [{key: k, "count": v} for k, v in counter.most_common(n)]


def _domain(address: str | None) -> str | None:
    if address and "@" in address:
        return address.rsplit("@", 1)[1].lower()
    return None


def inbound_query(ctx: RelayContext, q: InboundQueryBody) -> dict[str, Any]:
    t = now()
    start = range_start(q.range, t)
    # min above max is an empty range, not bad input: it matches nothing.
    where = ["dialect = 'phonerelay'"]
    params: list[Any] = []
    if start is not None:
        where.append("created_at >= ?")
        params.append(start)
    if q.channels:
        where.append(f"channel IN ({','.join('?' for _ in q.channels)})")
        params.extend(q.channels)
    rows = ctx.store.query(f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq", params)
    inbound, sent = [], []
    for row in rows:
        extra = loads_extra(row)
        if q.phone_id and extra.get("phone_id") not in (None, q.phone_id):
            continue
        if row["direction"] == "inbound":
            inbound.append(row)
        elif row["state"] != "failed":
            sent.append(row)

    # Responses: first outbound message to the event's source at or after the event.
    replies: dict[str, list[float]] = defaultdict(list)
    for row in sent:
        if row["to_addr"]:
            replies[row["to_addr"]].append(row["created_at"])

    events: list[dict[str, Any]] = []
    for row in inbound:
        ev = phonerelay_event(row)
        ev["tags"] = list(ev.get("tags") or [])
        if q.event_types and ev["event_type"] not in q.event_types:
            continue
        if q.tags:
            wanted = set(q.tags)
            have = set(ev["tags"])
            if (q.tag_mode == "all" and not wanted <= have) or (q.tag_mode == "any" and not wanted & have):
                continue
        if q.source_contains and q.source_contains not in (ev["source"] or ""):
            continue
        duration = ev.get("duration_sec")
        if q.min_duration_sec is not None and (duration is None or duration < q.min_duration_sec):
            continue
        if q.max_duration_sec is not None and (duration is None or duration > q.max_duration_sec):
            continue
        times = replies.get(ev["source"] or "", [])
        i = bisect.bisect_left(times, row["created_at"])
        response_min = round((times[i] - row["created_at"]) / 60.0, 2) if i < len(times) else None
        if q.has_response is not None and (response_min is not None) != q.has_response:
            continue
        ev["response_min"] = response_min
        ev["_ts"] = row["created_at"]
        events.append(ev)

    # summary
    calls = [e for e in events if e["event_type"] in CALL_TYPES]
    durations = [e["duration_sec"] for e in calls if e.get("duration_sec") is not None]
    responses = [e["response_min"] for e in events if e["response_min"] is not None]
    summary = {
        "inbound_total": len(events),
        "calls_total": len(calls),
        "messages_total": len(events) - len(calls),
        "answered_calls": sum(1 for e in calls if e["event_type"] == "answered"),
        "missed_calls": sum(1 for e in calls if e["event_type"] == "missed"),
        "avg_call_duration_sec": round(sum(durations) / len(durations)) if durations else 0,
        "median_response_min": round(statistics.median(responses), 2) if responses else None,
        "channels": dict(Counter(e["channel"] for e in events)),
    }

    # sent sections
    sent_channels = Counter(r["channel"] for r in sent)
    by_day = Counter(day_of(r["created_at"]) for r in sent)
    by_person: dict[str, dict[str, Any]] = {}
    tag_counter: Counter[str] = Counter()
    for r in sent:
        dest = r["to_addr"] or "(none)"
        p = by_person.setdefault(dest, {"destination": dest, "total": 0, "last_sent": None, "_ts": 0.0})
        p["total"] += 1
        if r["created_at"] >= p["_ts"]:
            p["_ts"] = r["created_at"]
            p["last_sent"] = iso_offset(r["created_at"])
        tag_counter.update(loads_extra(r).get("tags") or [])
    sent_by_person = sorted(by_person.values(), key=lambda p: (-p["total"], -p["_ts"]))
    for p in sent_by_person:
        del p["_ts"]
    sent_events = [
        {"message_id": r["id"], "destination": r["to_addr"], "channel": r["channel"],
         "status": raw_state("phonerelay", r["state"]), "delivered": r["state"] == "delivered",
         "created_at": iso_offset(r["created_at"]),
         "tags": loads_extra(r).get("tags") or []}
        for r in reversed(sent[-q.limit:])
    ]

    # email
    email_in = [e for e in events if e["channel"] == "email"]
    email_out = [r for r in sent if r["channel"] == "email"]
    domains: Counter[str] = Counter()
    for addr in [e["source"] for e in email_in] + [r["to_addr"] for r in email_out]:
        d = _domain(addr)
        if d:
            domains[d] += 1
    email_days = Counter([day_of(e["_ts"]) for e in email_in] + [day_of(r["created_at"]) for r in email_out])
    email_report = {
        "inbound_total": len(email_in),
        "sent_total": len(email_out),
        "top_inbound_senders": _top(Counter(e["source"] for e in email_in if e["source"]), "sender"),
        "top_sent_recipients": _top(Counter(r["to_addr"] for r in email_out if r["to_addr"]), "recipient"),
        "domains": _top(domains, "domain"),
        "by_day": [{"day": d, "count": c} for d, c in sorted(email_days.items())],
    }

    hourly = Counter(hour_of(e["_ts"]) for e in events)
    contacts: dict[str, dict[str, Any]] = {}
    for e in events:
        src = e["source"] or "(unknown)"
        c = contacts.setdefault(src, {"source": src, "total": 0, "last_seen": None, "channels": {}})
        c["total"] += 1
        c["last_seen"] = e["created_at"]
        c["channels"][e["channel"]] = c["channels"].get(e["channel"], 0) + 1
    top_contacts = sorted(contacts.values(), key=lambda c: -c["total"])[:TOP_N]

    def _sort_key(e: dict[str, Any]) -> tuple[Any, ...]:
        if q.sort == "oldest":
            return (e["_ts"],)
        if q.sort == "slowest":  # unanswered first: they are the slowest of all
            return (e["response_min"] is not None, -(e["response_min"] or 0), -e["_ts"])
        if q.sort == "fastest":
            return (e["response_min"] is None, e["response_min"] or 0, -e["_ts"])
        if q.sort == "longest":
            return (-(e.get("duration_sec") or 0), -e["_ts"])
        if q.sort == "shortest":
            return ((e.get("duration_sec") or 0), -e["_ts"])
        return (-e["_ts"],)

    listed = sorted(events, key=_sort_key)[: q.limit]
    for e in events:
        e.pop("_ts", None)

    return {
        "success": True,
        "summary": summary,
        "sent_summary": {"sent_total": len(sent), "channels": dict(sent_channels)},
        "sent_by_channel": dict(sent_channels),
        "sent_by_day": [{"day": d, "count": c} for d, c in sorted(by_day.items())],
        "sent_by_person": sent_by_person[: q.limit],
        "sent_by_tag": [{"tag": k, "count": v} for k, v in tag_counter.most_common()],
        "sent_events": sent_events,
        "email_report": email_report,
        "hourly": [{"hour": h, "count": c} for h, c in sorted(hourly.items())],
        "top_contacts": top_contacts,
        "events": listed,
        "count": len(listed),
    }

