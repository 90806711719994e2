"""The validation pass: every bad row reported with its number and field, before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay_integrations.campaign import Campaign, CampaignProgress, CampaignValidationError
from relay_integrations.dialects import get_dialect
from relay_integrations.errors import RelayValidationError

ROWS = [
    {"phone": "+12025550100", "name": "Ann"},
    {"phone": "+12025550101"},  # missing name
    {"phone": "12", "name": "Bob"},  # impossible number
    {"phone": "+12025550103", "name": "Cy"},
    {"phone": "+1 202 555 0100", "name": "Ann again"},  # duplicate of row 1 after normalising
    {"phone": "+12025550105", "name": ""},  # template renders to blanks only
    {"name": "Dee"},  # no phone
]


def make(rows=ROWS, template="Hi {{ name }}", tmp_path: Path | None = None, **kwargs) -> Campaign:
    kwargs.setdefault("campaign_id", "spring")
    if tmp_path is not None:
        kwargs.setdefault("ledger_path", tmp_path / "ledger.sqlite")
    return Campaign(template, rows, **kwargs)


def test_every_bad_row_is_reported_with_row_number_and_field(tmp_path: Path) -> None:
    campaign = make(template="{{ name }}", tmp_path=tmp_path)
    with pytest.raises(CampaignValidationError) as info:
        campaign.send(None, dry_run=True)
    err = info.value
    assert isinstance(err, RelayValidationError)
    got = {(e["row"], e["field"]) for e in err.errors}
    assert got == {(2, "text"), (3, "phone"), (6, "text"), (7, "phone")}
    messages = {(e["row"], e["field"]): e["message"] for e in err.errors}
    assert "missing column(s) name; this row has: phone" in messages[(2, "text")]
    assert "empty" in messages[(6, "text")]
    assert err.error_count == 4
    assert "row 2" in str(err)
    # The attached report has every row's state; nothing was sent.
    assert err.report is not None
    states = [r["state"] for r in err.report.rows]
    assert states == ["ready", "invalid", "invalid", "ready", "duplicate", "invalid", "invalid"]
    assert err.report.counts["accepted"] == 0


def test_validate_reports_without_raising() -> None:
    report = make().validate()
    assert not report.ok
    assert report.counts == {"total": 7, "valid": 3, "invalid": 3, "suppressed": 0, "deferred": 0, "duplicate": 1,
                             "already_sent": 0, "segments": 3}
    assert [e["row"] for e in report.errors] == [2, 3, 7]
    assert json.loads(json.dumps(report.to_dict()))["error_count"] == 3


def test_template_syntax_error_is_reported_once_for_the_template() -> None:
    campaign = make(template="Hi {{ name ")
    report = campaign.validate()
    assert report.counts["total"] == 0
    assert report.errors[0]["row"] is None and report.errors[0]["field"] == "text"
    assert "line 1" in report.errors[0]["message"]
    with pytest.raises(CampaignValidationError, match="template"):
        make(template="Hi {{ name ", skip_invalid=True).send(None, dry_run=True)


def test_templated_fields_are_checked_per_row() -> None:
    rows = [{"email": "a@example.com", "first": "A"}, {"email": "b@example.com"}]
    campaign = Campaign("Hello {{ first }}", rows, campaign_id="c", channel="email", address_field="email",
                        fields={"subject": "For {{ first }}", "priority": 5})
    report = campaign.validate()
    assert {(e["row"], e["field"]) for e in report.errors} == {(2, "text"), (2, "subject")}
    preview = campaign.preview(1)
    assert preview[0]["fields"] == {"subject": "For A", "priority": 5}
    assert preview[0]["segments"] is None  # not an SMS


def test_unknown_or_reserved_fields_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="colour"):
        make(fields={"colour": "red"})
    with pytest.raises(ValueError, match="text"):
        make(fields={"text": "x"})
    make(fields={"from": "+1987654321"})  # the wire alias of sender is fine


def test_message_field_types_are_checked() -> None:
    report = make(rows=[{"phone": "+12025550100", "name": "A", "p": "high"}], fields={"priority": "{{ p }}"}).validate()
    assert report.errors[0]["field"] == "priority"


def test_text_over_the_dialects_limit_is_invalid() -> None:
    rows = [{"phone": "+12025550100", "body": "x" * 1601}, {"phone": "+12025550101", "body": "ok"}]
    campaign = make(rows=rows, template="{{ body }}")
    assert campaign.validate().ok  # no dialect, no limit
    report = campaign.validate(dialect="relaysms")
    assert [(e["row"], e["field"]) for e in report.errors] == [(1, "text")]
    assert "1601" in report.errors[0]["message"] and "1600" in report.errors[0]["message"]


def test_channel_the_dialect_lacks_is_a_template_level_error() -> None:
    report = make(channel="wa").validate(dialect=get_dialect("smsgate"))
    assert report.errors[0]["field"] == "channel"


def test_sandbox_refuses_python_internals() -> None:
    template = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    report = make(rows=[{"phone": "+12025550100"}], template=template).validate()
    assert report.errors and report.errors[0]["field"] == "text"
    assert "sandbox" in report.errors[0]["message"] or "unsafe" in report.errors[0]["message"]


def test_skip_invalid_sends_the_good_rows_and_reports_the_rest(tmp_path: Path) -> None:
    report = make(skip_invalid=True, tmp_path=tmp_path).send(None, dry_run=True)
    assert report.counts["would_send"] == 3
    assert report.counts["invalid"] == 3
    assert report.counts["duplicate"] == 1
    assert report.counts["total"] == 7
    assert report.dry_run
    rows = list(report.rows)
    assert [r["row"] for r in rows] == list(range(1, 8))
    assert rows[2]["error"].startswith("phone:")


def test_dedupe_can_be_turned_off(tmp_path: Path) -> None:
    rows = [{"phone": "+12025550100", "name": "A"}, {"phone": "+1 202 555 0100", "name": "B"},
            {"phone": "+12025550100", "name": "A"}]
    report = make(rows=rows, tmp_path=tmp_path).send(None, dry_run=True)
    assert report.counts["would_send"] == 1 and report.counts["duplicate"] == 2
    report = make(rows=rows, tmp_path=tmp_path, dedupe=False).send(None, dry_run=True)
    assert report.counts["would_send"] == 3
    keys = [r["idempotency_key"] for r in report.rows]
    # Same address and same content -> same key (the relay/ledger sends it once); other content differs.
    assert keys[0] == keys[2] and keys[0] != keys[1]


def test_suppression_list_is_honoured_after_normalising(tmp_path: Path) -> None:
    rows = [{"phone": "+12025550100", "name": "A"}, {"phone": "2025550101", "name": "B"}]
    report = make(rows=rows, tmp_path=tmp_path, default_region="US",
                  suppression=["+1 (202) 555-0101"]).send(None, dry_run=True)
    assert report.counts["suppressed"] == 1 and report.counts["would_send"] == 1
    assert report.rows[1]["state"] == "suppressed"


def test_idempotency_keys_are_deterministic_and_content_bound(tmp_path: Path) -> None:
    rows = [{"phone": "+12025550100", "name": "A"}]
    k1 = make(rows=rows, tmp_path=tmp_path).preview(1)[0]["idempotency_key"]
    k2 = make(rows=rows, tmp_path=tmp_path).preview(1)[0]["idempotency_key"]
    k3 = make(rows=rows, tmp_path=tmp_path, template="Hello {{ name }}").preview(1)[0]["idempotency_key"]
    k4 = make(rows=rows, tmp_path=tmp_path, campaign_id="other").preview(1)[0]["idempotency_key"]
    k5 = make(rows=rows, tmp_path=tmp_path, fields={"sender": "+1987654321"}).preview(1)[0]["idempotency_key"]
    assert k1 == k2
    assert len({k1, k3, k4, k5}) == 4
    assert len(k1) == 36


def test_idempotency_keys_do_not_change_between_versions() -> None:
    """Ledgers written by earlier runs are looked up by these keys; the value is pinned."""
    campaign = Campaign("Hi {{ name }} ✓", [{"phone": "+1 202 555 0100", "name": "Zoë"}], campaign_id="spring",
                        fields={"priority": 100})
    assert campaign.preview(1)[0]["idempotency_key"] == "3d64d434-8462-51e3-a015-ce3dcfc71128"


def test_preview_shows_rendered_text_segments_and_problems() -> None:
    rows = [{"phone": "+12025550100", "name": "René"}, {"phone": "+12025550101"},
            {"phone": "+12025550102", "name": "Łukasz"}]
    preview = make(rows=rows, template="Hi {{ name }} " + "x" * 160).preview(5)
    assert len(preview) == 3
    assert preview[0]["text"].startswith("Hi René") and preview[0]["encoding"] == "GSM-7"
    assert preview[0]["segments"] == 2
    assert preview[1]["state"] == "invalid" and preview[1]["errors"][0]["field"] == "text"
    assert preview[2]["encoding"] == "UCS-2" and preview[2]["segments"] == 3


def test_preview_reports_a_repeated_address_as_the_validation_pass_does() -> None:
    rows = [{"phone": "+12025550100", "name": "A"}, {"phone": "+12025550100", "name": "B"}, {"phone": "12"}]
    preview = make(rows=rows).preview(5)
    assert [p["state"] for p in preview] == ["ok", "duplicate", "invalid"]
    assert preview[0]["idempotency_key"] and preview[1]["idempotency_key"] is None
    assert make(rows=rows).validate().counts["duplicate"] == 1


def test_rows_from_a_csv_file_carry_their_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("phone,name\n+12025550100,A\nnope,B\n+12025550102,\n")
    report = Campaign("Hi {{ name }}!", path, campaign_id="csv").validate()
    assert [(e["row"], e["field"]) for e in report.errors] == [(2, "phone")]
    assert report.counts["valid"] == 2


def test_template_can_come_from_a_file(tmp_path: Path) -> None:
    template = tmp_path / "message.j2"
    template.write_text("Dear {{ name }},\nsee you.\n")
    preview = Campaign(template, [{"phone": "+12025550100", "name": "A"}], campaign_id="f").preview(1)
    assert preview[0]["text"] == "Dear A,\nsee you."


def test_report_to_dict_is_json_and_caps_rows_keeping_problems_first(tmp_path: Path) -> None:
    rows = [{"phone": f"+1202555{i:04d}", "name": "n"} for i in range(100, 130)] + [{"phone": "bad", "name": "x"}]
    report = make(rows=rows, tmp_path=tmp_path, skip_invalid=True).send(None, dry_run=True)
    full = json.loads(json.dumps(report.to_dict()))
    assert len(full["rows"]) == 31 and full["rows_omitted"] == 0
    capped = json.loads(json.dumps(report.to_dict(max_rows=5)))
    assert len(capped["rows"]) == 5 and capped["rows_omitted"] == 26
    assert any(r["state"] == "invalid" for r in capped["rows"])
    assert capped["counts"]["would_send"] == 30


def test_progress_is_reported_while_validating(tmp_path: Path) -> None:
    seen: list[CampaignProgress] = []
    rows = ({"phone": f"+1202555{i:04d}", "name": "n"} for i in range(2500))
    report = make(rows=rows, tmp_path=tmp_path, progress=lambda p: seen.append(
        CampaignProgress(**{k: getattr(p, k) for k in p.__dataclass_fields__}))).send(None, dry_run=True)
    assert report.counts["would_send"] == 2500
    validating = [p.processed for p in seen if p.phase == "validating"]
    assert validating == [1000, 2000, 2500]
