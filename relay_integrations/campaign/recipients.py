"""Streaming recipient sources: lists of dicts, CSV files, JSON-lines files, any iterable.

Each source yields ``(row_number, row)`` with 1-based row numbers (the header of a CSV file is not
a row). A row that cannot be read (bad JSON, not an object) is yielded as a :class:`RowReadError`
so the validation pass reports it with its number and carries on. Sources can be read more than
once (a validation pass, then a send pass); a one-shot iterator is spooled to a temporary file on
its first read and replayed from there, so memory stays flat however many recipients there are.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")


@dataclass(frozen=True)
class RowReadError:
    """A row that could not be read into a mapping."""

    message: str


RowItem = tuple[int, "Mapping[str, Any] | RowReadError"]


class RecipientSource:
    """Recipients that can be iterated as many times as needed."""

    def __iter__(self) -> Iterator[RowItem]:
        raise NotImplementedError

    def close(self) -> None:
        """Release temporary files, if any."""


class CsvSource(RecipientSource):
    """A CSV file with a header row (UTF-8, a BOM is tolerated)."""

    def __init__(self, path: str | os.PathLike[str], *, delimiter: str = ",") -> None:
        self.path = Path(path)
        self.delimiter = delimiter
        if not self.path.is_file():
            raise FileNotFoundError(f"recipients file {self.path} does not exist")

    def __iter__(self) -> Iterator[RowItem]:
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            for number, row in enumerate(reader, start=1):
                extra = row.pop(None, None)  # type: ignore[call-overload,unused-ignore]
                if extra:
                    message = f"line {reader.line_num}: {len(extra)} more value(s) than header columns"
                    yield number, RowReadError(message)
                    continue
                yield number, row


class JsonLinesSource(RecipientSource):
    """A JSON-lines file: one JSON object per line; blank lines are skipped and not numbered."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"recipients file {self.path} does not exist")

    def __iter__(self) -> Iterator[RowItem]:
        number = 0
        with open(self.path, encoding="utf-8-sig") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                number += 1
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, RowReadError(f"line {line_no}: invalid JSON ({exc.msg})")
                    continue
                if not isinstance(value, dict):
                    yield number, RowReadError(f"line {line_no}: expected a JSON object, got {type(value).__name__}")
                    continue
                yield number, value


def _as_item(number: int, value: Any) -> RowItem:
    if isinstance(value, Mapping):
        return number, value
    return number, RowReadError(f"expected a mapping, got {type(value).__name__}")


class SequenceSource(RecipientSource):
    """A list or tuple of mappings, iterated in place."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[RowItem]:
        for number, value in enumerate(self.rows, start=1):
            yield _as_item(number, value)


class SpooledSource(RecipientSource):
    """A one-shot iterable, copied to a temporary file as it is first read and replayed from there.

    Reading stops where the consumer stops (a preview reads five rows); the next read replays what
    was spooled and continues from the live iterator.
    """

    def __init__(self, rows: Iterable[Any]) -> None:
        self._live: Iterator[Any] | None = iter(rows)
        fd, name = tempfile.mkstemp(prefix="relay-campaign-", suffix=".spool")
        self._path = name
        self._writer: IO[bytes] = os.fdopen(fd, "wb")
        self._spooled = 0
        self._finalizer = weakref.finalize(self, SpooledSource._cleanup, self._writer, name)

    @staticmethod
    def _cleanup(writer: IO[bytes], path: str) -> None:
        writer.close()
        try:
            os.unlink(path)
        except OSError:
            pass

    def __iter__(self) -> Iterator[RowItem]:
        self._writer.flush()
        number = 0
        with open(self._path, "rb") as reader:
            while number < self._spooled:
                number += 1
                yield _as_item(number, pickle.load(reader))
        while self._live is not None:
            try:
                value = next(self._live)
            except StopIteration:
                self._live = None
                break
            # Pickle keeps the row's Python types (dates, decimals) for the templates of the next pass.
            pickle.dump(value, self._writer, protocol=pickle.HIGHEST_PROTOCOL)
            self._spooled += 1
            number += 1
            yield _as_item(number, value)
        self._writer.flush()

    def close(self) -> None:
        self._finalizer()


def open_recipients(recipients: Iterable[Mapping[str, Any]] | str | os.PathLike[str]) -> RecipientSource:
    """The right source for ``recipients``: a CSV/JSON-lines path, a list/tuple, or any iterable."""
    if isinstance(recipients, RecipientSource):
        return recipients
    if isinstance(recipients, (str, os.PathLike)):
        path = Path(recipients)
        suffix = path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            return CsvSource(path)
        if suffix in JSONL_SUFFIXES:
            return JsonLinesSource(path)
        raise ValueError(
            f"recipients path {path} must end in .csv or .jsonl/.ndjson (got {suffix or 'no suffix'})"
        )
    if isinstance(recipients, Mapping):
        raise TypeError("recipients must be an iterable of mappings, not one mapping")
    if isinstance(recipients, Sequence):
        return SequenceSource(recipients)
    return SpooledSource(recipients)
