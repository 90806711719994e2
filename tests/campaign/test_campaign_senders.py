"""Sending plans: chunking by the relay's limits, deterministic smsgate groups, the rate limit."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.campaign import Campaign
from relay_integrations.campaign.report import READY
from relay_integrations.campaign.senders import Pacer, choose_strategy, key_to_uuid, plan_units
from relay_integrations.campaign.store import ScratchStore
from relay_integrations.dialects import get_dialect


def planned_store(rows: list[dict[str, str]], template: str, dialect: str) -> ScratchStore:
    campaign = Campaign(template, rows, campaign_id="plan")
    return campaign._plan(get_dialect(dialect))


def test_strategy_follows_the_dialect() -> None:
    assert [choose_strategy(get_dialect(d).capabilities.batch) for d in ("phonerelay", "relaysms", "coop", "smsgate")] \
        == ["single", "batch", "bulk", "recipients"]


def test_batches_respect_the_size_limit_and_keep_row_order() -> None:
    rows = [{"phone": f"+1312555{i:04d}", "name": str(i)} for i in range(1, 251)]
    store = planned_store(rows, "Hi {{ name }}", "relaysms")
    units = list(plan_units(store, "batch", campaign_id="plan", max_batch_size=100))
    assert [u.size for u in units] == [100, 100, 50]
    assert [p.row for u in units for p in u.rows] == list(range(1, 251))
    assert units[0].messages is not None and units[0].messages[0].text == "Hi 1"
    # A rate limit caps a request at one second's allowance.
    units = list(plan_units(store, "batch", campaign_id="plan", max_batch_size=100, rate_limit=30))
    assert max(u.size for u in units) == 30


def test_smsgate_groups_identical_texts_deterministically() -> None:
    rows = [{"phone": f"+1312555{i:04d}", "kind": "a" if i % 3 else "b"} for i in range(1, 251)]
    store = planned_store(rows, "Offer {{ kind }}", "smsgate")
    units = list(plan_units(store, "recipients", campaign_id="plan", max_batch_size=100))
    texts = {u.message.text for u in units if u.message}
    assert texts == {"Offer a", "Offer b"}
    assert all(u.size <= 100 for u in units)
    assert sum(u.size for u in units) == 250
    for unit in units:
        assert unit.message is not None and unit.message.to == [p.address for p in unit.rows]
    again = list(plan_units(planned_store(rows, "Offer {{ kind }}", "smsgate"), "recipients", campaign_id="plan",
                            max_batch_size=100))
    assert [u.message.idempotency_key for u in units if u.message] == \
        [u.message.idempotency_key for u in again if u.message]
    assert store.count(READY) == 250


def test_pacer_spaces_requests_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_integrations.campaign import senders

    clock = [100.0]
    monkeypatch.setattr(senders.time, "monotonic", lambda: clock[0])
    pacer = Pacer(10)
    assert pacer.delay_for(5) == 0.0
    assert pacer.delay_for(5) == pytest.approx(0.5)  # the first five messages took half a second of allowance
    clock[0] += 2.0
    assert pacer.delay_for(1) == 0.0  # idle time is not saved up beyond now
    assert Pacer(None).delay_for(1000) == 0.0
    with pytest.raises(ValueError, match="rate_limit"):
        Pacer(0)


def test_campaign_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="campaign_id"):
        Campaign("x", [], campaign_id=" ")
    with pytest.raises(ValueError, match="concurrency"):
        Campaign("x", [], campaign_id="c", concurrency=0)
    with pytest.raises(ValueError, match="rate_limit"):
        Campaign("x", [], campaign_id="c", rate_limit=-1)
    with pytest.raises(ValueError, match="number_check"):
        Campaign("x", [], campaign_id="c", number_check="maybe")  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_keys_are_the_uuid5_shaped_sha256_prefix(material: str) -> None:
    expected = uuid.UUID(bytes=hashlib.sha256(material.encode()).digest()[:16], version=5)
    assert key_to_uuid(material) == str(expected)
