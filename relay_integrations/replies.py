"""Replies to a campaign: who answered, the reply rate, and who asked to stop.

Opt-out keywords are the ones carriers and regulators expect a bulk sender to honour (CTIA's STOP,
STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, plus OPTOUT), compared trimmed and in any case: a reply of
``" stop "`` opts out, ``"stop it"`` does not. START and UNSTOP opt back in. The suppression list
built from them is :mod:`relay_integrations.campaign.suppression`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OPT_OUT_KEYWORDS: frozenset[str] = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
#: Replies that lift an earlier opt-out (CTIA's START and UNSTOP).
OPT_IN_KEYWORDS: frozenset[str] = frozenset({"START", "UNSTOP"})

#: Addresses listed in a summary; the counts cover every one.
MAX_LISTED = 50
#: Latest replies shown in a summary.
LATEST_SHOWN = 10


def is_opt_out(text: str | None) -> bool:
    """Whether a reply asks to stop messages: exactly an opt-out keyword, trimmed, in any case."""
    return bool(text) and str(text).strip().upper() in OPT_OUT_KEYWORDS


def is_opt_in(text: str | None) -> bool:
    """Whether a reply lifts an earlier opt-out: exactly START or UNSTOP, trimmed, in any case."""
    return bool(text) and str(text).strip().upper() in OPT_IN_KEYWORDS


def summarize_replies(
    replies: Iterable[Mapping[str, Any]], addresses: Iterable[str], source: str | None
) -> dict[str, Any]:
    """Count replies (``{sender, text}``) from the campaign's ``addresses``; others are ignored.

    :return: ``{source, replies, repliers, reply_rate, opt_outs, opt_out_count, latest}``; the reply
        rate is repliers over addresses (0.0 for none), rounded to 4 places.
    """
    wanted = set(addresses)
    counted = [r for r in replies if r.get("sender") in wanted]
    repliers = {r["sender"] for r in counted}
    opt_outs = sorted({r["sender"] for r in counted if is_opt_out(r.get("text"))})
    return {
        "source": source,
        "replies": len(counted),
        "repliers": len(repliers),
        "reply_rate": round(len(repliers) / len(wanted), 4) if wanted else 0.0,
        "opt_outs": opt_outs[:MAX_LISTED],
        "opt_out_count": len(opt_outs),
        "latest": [{"sender": r["sender"], "text": r.get("text")} for r in counted[-LATEST_SHOWN:]],
    }
