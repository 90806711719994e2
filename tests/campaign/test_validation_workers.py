"""The validation pass on forked worker processes gives what the pass in one process gives."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from campaign_relay_helpers import messages_per_address, numbers, texts_by_address, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_integrations.campaign import Campaign, validation_pool
from relay_integrations.campaign.campaign import _resolve_dialect
from relay_integrations.campaign.recipients import RowReadError
from relay_integrations.campaign.validation_pool import JudgedRows, check_workers, workers_for
from relay_integrations.process import ReferenceRelayProcess

PARENT = os.getpid()
POOL = [f"+1415555{i:04d}" for i in range(1, 9)]  # few addresses: duplicates are common


@pytest.fixture
def small_chunks() -> Iterator[None]:
    """Workers start after 3 rows, take 4 rows at a time and are forked afresh every 12 rows, so a
    few dozen rows cross many chunks and several sets of workers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation_pool, "SERIAL_ROWS", 3)
        patch.setattr(validation_pool, "CHUNK_ROWS", 4)
        patch.setattr(validation_pool, "RECYCLE_ROWS", 12)
        yield


FEW = POOL[:4]  # repeats within one chunk of 4 rows, so which row is first matters
rows_strategy = st.lists(
    st.one_of(
        st.fixed_dictionaries({"phone": st.sampled_from(FEW), "name": st.text(max_size=12)}),
        st.fixed_dictionaries({"phone": st.sampled_from(["12", "not a number", ""]), "name": st.just("x")}),
        st.fixed_dictionaries({"phone": st.sampled_from(FEW)}),  # no name: the template cannot render
        st.fixed_dictionaries({"phone": st.sampled_from(FEW), "name": st.just("late"),
                               "send_at": st.just("2030-01-01T09:00:00+00:00")}),
    ),
    max_size=40,
)


def planned_rows(campaign: Campaign) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every row and error the validation pass stored, messages unpickled (a real send keeps them)."""
    store = campaign._plan(_resolve_dialect("relaysms"), keep_messages=True)
    try:
        rows = [tuple(pickle.loads(v) if isinstance(v, bytes) else v for v in r)
                for r in store.conn.execute("SELECT * FROM rows ORDER BY row")]
        errors = list(store.conn.execute("SELECT * FROM errors ORDER BY row, field, message"))
        return rows, errors
    finally:
        store.close()


def make(rows: list[dict[str, Any]], workers: int, ledger: Path | None = None) -> Campaign:
    return Campaign("Hi {{ name }}", rows, campaign_id="same-either-way", default_region="US", skip_invalid=True,
                    suppression=[POOL[0]], validation_workers=workers, ledger=ledger)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_workers_plan_every_row_as_one_process_does(small_chunks: None, rows: list[dict[str, Any]]) -> None:
    alone = make(rows, 0)
    pooled = make(rows, 1)
    assert planned_rows(pooled) == planned_rows(alone)
    assert pooled._validation_workers_used == (1 if len(rows) > 3 else 0)
    assert alone._validation_workers_used == 0


def test_dry_run_report_names_the_workers_and_matches(small_chunks: None, tmp_path: Path) -> None:
    rows = [{"phone": POOL[i % len(POOL)], "name": f"P{i}"} for i in range(30)] + [{"phone": "12", "name": "x"}]
    reports = [make(rows, workers, tmp_path / f"{workers}.ledger").send(None, dry_run=True) for workers in (0, 2)]
    assert reports[1].validation_workers == 2 and reports[0].validation_workers == 0
    assert list(reports[1].rows) == list(reports[0].rows) and reports[1].counts == reports[0].counts
    counts = reports[1].counts  # POOL[0] is suppressed (4 rows); 7 other addresses, each first seen once
    assert (counts["suppressed"], counts["duplicate"], counts["invalid"], counts["would_send"]) == (4, 19, 1, 7)
    assert reports[1].to_dict()["validation_workers"] == 2
    validation = make(rows, 1).validate(dialect="relaysms")
    assert validation.validation_workers == 1 and validation.counts == make(rows, 0).validate("relaysms").counts


def _doubled(number: int, item: Any) -> Any:
    """A stand-in judge: a result that differs per row, an error on some."""
    if isinstance(item, RowReadError):
        return ((number, item.message), [])
    return ((number, item["v"] * 2), [("v", "seen")] if item["v"] % 3 == 0 else [])


@settings(max_examples=40, deadline=None)
@given(count=st.integers(0, 60), serial=st.integers(0, 5), chunk=st.integers(1, 7), recycle=st.integers(1, 30),
       unpicklable=st.sets(st.integers(1, 60), max_size=5))
def test_rows_come_back_in_input_order(count: int, serial: int, chunk: int, recycle: int,
                                       unpicklable: set[int]) -> None:
    items = [(n, {"v": n, "callback": (lambda: None) if n in unpicklable else None}) for n in range(1, count + 1)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation_pool, "SERIAL_ROWS", serial)
        patch.setattr(validation_pool, "CHUNK_ROWS", chunk)
        patch.setattr(validation_pool, "RECYCLE_ROWS", recycle)
        judged = JudgedRows(items, _doubled, 1)
        assert list(judged) == [_doubled(n, item) for n, item in items]
    assert judged.workers_used == (1 if count > serial else 0)


def test_workers_are_forked_afresh_as_rows_go_by(small_chunks: None) -> None:
    """Each set of workers judges about RECYCLE_ROWS rows, then a new fork takes over (the old
    workers' copies of this process's pages are freed); this process judges rows too while waiting."""
    judged = list(JudgedRows([(n, {"v": n}) for n in range(1, 80)], lambda n, item: ((n, os.getpid()), []), 1))
    assert [n for (n, _), _ in judged] == list(range(1, 80))
    workers = {pid for (_, pid), _ in judged} - {PARENT}
    assert len(workers) >= 3  # 76 rows after the first 3, at most 12 + a chunk in flight per fork


def test_two_passes_at_once_each_get_their_own_judge(small_chunks: None) -> None:
    """Explicit workers from two threads at once: each pass's workers run that pass's judge."""
    items = [(n, {"v": n}) for n in range(1, 60)]
    results: dict[str, list[Any]] = {}

    def run(name: str) -> None:
        results[name] = list(JudgedRows(items, lambda n, item: ((name, n), []), 1))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("first", "second"):
        assert results[name] == [((name, n), []) for n, _ in items]


def test_a_killed_worker_leaves_its_rows_to_this_process(small_chunks: None) -> None:
    def judge(number: int, item: Any) -> Any:
        if os.getpid() != PARENT and number == 9:
            os.kill(os.getpid(), signal.SIGKILL)
        return _doubled(number, item)

    items = [(n, {"v": n}) for n in range(1, 41)]
    judged = JudgedRows(items, judge, 1)
    assert list(judged) == [_doubled(n, item) for n, item in items]
    assert judged.workers_used == 1


def test_rows_pickle_cannot_copy_are_judged_here(small_chunks: None) -> None:
    items: list[tuple[int, Any]] = [(n, {"v": n, "callback": (lambda: None) if n % 5 == 0 else None})
                                    for n in range(1, 30)]
    items.append((30, RowReadError("line 31: invalid JSON")))
    judged = JudgedRows(items, _doubled, 1)
    assert list(judged) == [_doubled(n, item) for n, item in items]
    assert judged.workers_used == 1


_ENDLESS_DRY_RUN = """
import itertools, sys
from relay_integrations.campaign import Campaign
rows = ({"phone": f"+1415{2000000 + i % 7000000:07d}", "name": "x"} for i in itertools.count())
campaign = Campaign("Hi {{ name }}", rows, campaign_id="endless", ledger=sys.argv[1], validation_workers=1)
campaign.send(None, dry_run=True)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_a_killed_parent(tmp_path: Path, sig: signal.Signals) -> None:
    """A task killed mid-validation (an Airflow timeout, the OOM killer) leaves no worker behind,
    holding its pipes, for ever."""
    proc = subprocess.Popen([sys.executable, "-c", _ENDLESS_DRY_RUN, str(tmp_path / "ledger.sqlite")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        workers = wait_until(lambda: _children(proc.pid), "the validation worker to start", timeout=120)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig
        wait_until(lambda: not any(_running(pid) for pid in workers), "the worker to die with its parent")
    finally:
        proc.kill()
        proc.wait()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def test_an_error_in_a_worker_reaches_the_caller(small_chunks: None) -> None:
    def judge(number: int, item: Any) -> Any:
        if number == 11:
            raise LookupError(f"row {number}: broken filter")
        return _doubled(number, item)

    with pytest.raises(LookupError, match="row 11: broken filter"):
        list(JudgedRows([(n, {"v": n}) for n in range(1, 30)], judge, 1))


def test_auto_forks_only_from_a_process_without_other_threads() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert workers_for("auto") == 0
    finally:
        stop.set()
        other.join()
    assert workers_for(0) == 0 and workers_for(3) == 3
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(ValueError, match="validation_workers"):
            check_workers(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="validation_workers"):
        Campaign("Hi", [], campaign_id="x", validation_workers=-2)


@pytest.mark.e2e
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="'auto' forks workers only with two cores or more")
def test_relay_campaign_command_validates_on_workers_and_sends_each_once(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    """3,000 rows through ``relay campaign`` as users run it: a worker process checks most of them
    (the report says so), and the relay gets exactly one message per address, with its own text."""
    addresses = numbers(2_900)
    recipients = tmp_path / "people.csv"
    with open(recipients, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "name"])
        for i, address in enumerate(addresses):
            writer.writerow([address, f"Person {i}"])
        for i in range(100):  # repeats of earlier addresses, after the first 2,000 rows
            writer.writerow([addresses[i * 7], f"Again {i}"])
    env = {**os.environ, "RELAY_BASE_URL": relay.url("relaysms"), "RELAY_DIALECT": "relaysms",
           "RELAY_API_KEY": relay.api_key, "RELAY_SENDER": "+1987654321"}
    run = subprocess.run(
        [sys.executable, "-m", "relay_integrations", "campaign", "--template", "Hello {{ name }}",
         "--recipients", str(recipients), "--campaign-id", "validated-on-workers",
         "--ledger", str(tmp_path / "ledger.sqlite"), "--no-progress", "--max-rows", "0"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["validation_workers"] >= 1
    assert report["counts"]["accepted"] == 2_900 and report["counts"]["duplicate"] == 100
    assert messages_per_address(relay, "relaysms", addresses) == {a: 1 for a in addresses}
    assert texts_by_address(relay, "relaysms", addresses) == {a: f"Hello Person {i}" for i, a in enumerate(addresses)}


def test_relay_campaign_validation_workers_option(tmp_path: Path) -> None:
    """``--validation-workers 0`` keeps every row in the command's own process; a bad value is a usage error."""
    recipients = tmp_path / "people.csv"
    recipients.write_text("phone,name\n" + "".join(f"+1415{2000000 + i:07d},P{i}\n" for i in range(2_500)))
    base = [sys.executable, "-m", "relay_integrations", "campaign", "--template", "Hi {{ name }}",
            "--recipients", str(recipients), "--campaign-id", "option", "--dialect", "relaysms",
            "--base-url", "http://127.0.0.1:9", "--api-key", "unused", "--dry-run", "--max-rows", "0",
            "--ledger", str(tmp_path / "ledger.sqlite")]
    run = subprocess.run([*base, "--validation-workers", "0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["validation_workers"] == 0 and report["counts"]["would_send"] == 2_500
    bad = subprocess.run([*base, "--validation-workers", "some"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--validation-workers: 'auto' or a whole number >= 0, not 'some'" in bad.stderr
