"""Recipient sources: CSV and JSON-lines files, lists, one-shot iterators spooled for a second pass."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from relay_integrations.campaign.recipients import (
    CsvSource,
    JsonLinesSource,
    RowReadError,
    SequenceSource,
    SpooledSource,
    open_recipients,
)


def test_csv_rows_are_numbered_from_one_without_the_header(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("\ufeffphone,name\n+12025550100,Ann\n+12025550101,Bob\n+1,a,extra\n", encoding="utf-8")
    rows = list(open_recipients(path))
    assert isinstance(open_recipients(str(path)), CsvSource)
    assert rows[0] == (1, {"phone": "+12025550100", "name": "Ann"})
    assert rows[1] == (2, {"phone": "+12025550101", "name": "Bob"})
    number, bad = rows[2]
    assert number == 3 and isinstance(bad, RowReadError) and "more value" in bad.message


def test_jsonl_rows_skip_blank_lines_and_report_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        json.dumps({"phone": "+12025550100"}) + "\n\n" + "{not json\n" + "[1, 2]\n" + json.dumps({"phone": "x"}) + "\n"
    )
    source = open_recipients(path)
    assert isinstance(source, JsonLinesSource)
    rows = list(source)
    assert [n for n, _ in rows] == [1, 2, 3, 4]
    assert rows[0][1] == {"phone": "+12025550100"}
    assert isinstance(rows[1][1], RowReadError) and "line 3" in rows[1][1].message
    assert isinstance(rows[2][1], RowReadError) and "JSON object" in rows[2][1].message
    # A second read gives the same rows (a validation pass, then a send pass).
    assert list(source) == rows


def test_unknown_suffix_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        open_recipients(tmp_path / "r.txt")
    with pytest.raises(FileNotFoundError):
        open_recipients(tmp_path / "missing.csv")
    with pytest.raises(TypeError):
        open_recipients({"phone": "+1"})  # type: ignore[arg-type]


def test_lists_are_read_in_place_and_non_mappings_are_row_errors() -> None:
    source = open_recipients([{"phone": "1"}, "oops"])
    assert isinstance(source, SequenceSource)
    rows = list(source)
    assert rows[0] == (1, {"phone": "1"})
    assert isinstance(rows[1][1], RowReadError)


def test_one_shot_iterators_are_spooled_and_replayed_with_their_types() -> None:
    pulled = []

    def generate():
        for i in range(5):
            pulled.append(i)
            yield {"phone": f"+1202555010{i}", "due": dt.date(2026, 1, i + 1)}

    source = open_recipients(generate())
    assert isinstance(source, SpooledSource)
    # A partial read (a preview) pulls only what it needs ...
    first_two = []
    for item in source:
        first_two.append(item)
        if len(first_two) == 2:
            break
    assert pulled == [0, 1]
    # ... and later reads replay the spooled rows, then continue from the live iterator.
    full = list(source)
    assert [n for n, _ in full] == [1, 2, 3, 4, 5]
    assert full[:2] == first_two
    assert full[4][1]["due"] == dt.date(2026, 1, 5)
    assert list(source) == full
    assert pulled == [0, 1, 2, 3, 4]  # the generator was read exactly once
    source.close()
