"""Property tests of every dialect's state mapping and of smsgate's recipient roll-up."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.dialects import DIALECT_NAMES, coop, get_dialect, phonerelay, relaysms, smsgate
from relay_integrations.models import MessageState, later_state

TABLES: dict[str, Mapping[str, MessageState]] = {
    "phonerelay": phonerelay.STATES,
    "relaysms": relaysms.STATES,
    "coop": coop.STATES,
    "smsgate": smsgate.STATES,
}

#: Each relay's documented happy path, in its own spelling.
LIFECYCLES: dict[str, list[str]] = {
    "phonerelay": ["queued", "sending", "sent"],
    "relaysms": ["accepted", "queued", "sending", "sent", "delivered"],
    "coop": ["queued", "processing", "sent", "delivered"],
    "smsgate": ["Pending", "Processed", "Sent", "Delivered"],
}
#: Names that end a message unsuccessfully.
FAILURES: dict[str, list[str]] = {
    "phonerelay": ["failed"],
    "relaysms": ["failed", "undelivered", "delivery_failed", "canceled", "cancelled"],
    "coop": ["failed"],
    "smsgate": ["Failed"],
}
SMSGATE_NAMES = ["Pending", "Processed", "Sent", "Delivered", "Failed"]

# No deadline: the suite runs on 2 busy cores in CI, and timing is not what these tests check.
PROPERTY = settings(max_examples=60, deadline=None)


def any_case(word: str) -> st.SearchStrategy[str]:
    """``word`` with each letter in upper or lower case."""
    return st.integers(0, 2 ** len(word) - 1).map(
        lambda mask: "".join(c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(word))
    )


def raw_state_of(dialect: str) -> st.SearchStrategy[tuple[str, MessageState]]:
    table = TABLES[dialect]
    return st.one_of([any_case(name).map(lambda raw, name=name: (raw, table[name])) for name in sorted(table)])


def test_tables_cover_the_documented_names() -> None:
    assert set(TABLES) == set(DIALECT_NAMES)
    for dialect, names in {**LIFECYCLES}.items():
        for name in names + FAILURES[dialect]:
            assert name.lower() in TABLES[dialect], (dialect, name)
    # The brief's relaysms mapping, name by name.
    assert {k: v.value for k, v in relaysms.STATES.items()} == {
        "accepted": "queued",
        "queued": "queued",
        "sending": "sending",
        "sent": "sent",
        "delivered": "delivered",
        "failed": "failed",
        "undelivered": "failed",
        "delivery_failed": "failed",
        "canceled": "cancelled",
        "cancelled": "cancelled",
    }


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@PROPERTY
@given(data=st.data())
def test_every_raw_state_maps_in_any_case(dialect: str, data: st.DataObject) -> None:
    raw, expected = data.draw(raw_state_of(dialect))
    assert get_dialect(dialect).map_state(raw) is expected


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@PROPERTY
@given(raw=st.text(max_size=20))
def test_unknown_states_are_refused_by_name(dialect: str, raw: str) -> None:
    if raw.strip().lower() in TABLES[dialect]:
        return
    with pytest.raises(ValueError) as info:
        get_dialect(dialect).map_state(raw)
    assert repr(raw) in str(info.value)
    assert dialect in str(info.value)


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_lifecycle_ranks_never_go_down(dialect: str) -> None:
    mapped = [get_dialect(dialect).map_state(raw) for raw in LIFECYCLES[dialect]]
    ranks = [state.rank for state in mapped]
    assert ranks == sorted(ranks)
    assert mapped[0] is MessageState.QUEUED
    for raw in FAILURES[dialect]:
        state = get_dialect(dialect).map_state(raw)
        assert state.is_final and state.rank == max(s.rank for s in MessageState)


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@PROPERTY
@given(data=st.data())
def test_out_of_order_events_settle_on_the_most_advanced_state(dialect: str, data: st.DataObject) -> None:
    """Whatever order a relay's state reports arrive in, folding them keeps the highest rank."""
    arrivals = data.draw(st.lists(raw_state_of(dialect), min_size=1, max_size=12))
    current: MessageState | None = None
    for raw, _ in arrivals:
        current = later_state(current, get_dialect(dialect).map_state(raw))
    assert current is not None
    assert current.rank == max(expected.rank for _, expected in arrivals)


# --- smsgate roll-up ---------------------------------------------------------------------------
recipient_states = st.lists(st.one_of([any_case(name) for name in SMSGATE_NAMES]), min_size=1, max_size=40)


@PROPERTY
@given(states=recipient_states)
def test_rollup_rules(states: list[str]) -> None:
    names = [s.lower() for s in states]
    rolled = smsgate.rollup_state(states)
    if "pending" in names:
        assert rolled == "Pending"
    elif "processed" in names:
        assert rolled == "Processed"
    elif all(n == "delivered" for n in names):
        assert rolled == "Delivered"
    elif all(n == "failed" for n in names):
        assert rolled == "Failed"
    else:
        assert rolled == "Sent"


@PROPERTY
@given(states=recipient_states, data=st.data())
def test_rollup_ignores_order_and_never_overstates(states: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(states))
    rolled = smsgate.rollup_state(states)
    assert smsgate.rollup_state(shuffled) == rolled
    best = max(smsgate.DIALECT.map_state(s).rank for s in states)
    assert smsgate.DIALECT.map_state(rolled).rank <= best


@PROPERTY
@given(states=recipient_states)
def test_status_without_state_uses_the_rollup(states: list[str]) -> None:
    body = {
        "id": "m1",
        "recipients": [{"phoneNumber": f"+1202555{i:04d}", "state": s, "error": None} for i, s in enumerate(states)],
    }
    report = smsgate.DIALECT.parse_status(body)
    assert report.raw_state == smsgate.rollup_state(states)
    assert report.state is smsgate.DIALECT.map_state(report.raw_state)
    assert [r.state for r in report.recipients] == [smsgate.DIALECT.map_state(s) for s in states]


def test_rollup_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="Queued"):
        smsgate.rollup_state(["Sent", "Queued"])
    assert smsgate.rollup_state([]) == "Pending"


# --- phonerelay delivery rule ----------------------------------------------------------------------
@PROPERTY
@given(raw=raw_state_of("phonerelay"), delivered_at=st.sampled_from([None, "2026-02-17T19:40:05+00:00"]))
def test_phonerelay_delivered_at_only_upgrades_sent(raw: tuple[str, MessageState], delivered_at: str | None) -> None:
    name, expected = raw
    report = phonerelay.DIALECT.parse_status(
        {"success": True, "message": {"message_id": "msg_1", "status": name, "delivered_at": delivered_at}}
    )
    if expected is MessageState.SENT and delivered_at:
        assert report.state is MessageState.DELIVERED
    else:
        assert report.state is expected
    assert report.raw_state == name
