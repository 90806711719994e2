"""How a task's failure meets Airflow's retries.

Which errors a retry can fix is the core's classification (:mod:`relay_integrations.retry_policy`,
the same one the Prefect tasks use); here it becomes Airflow's vocabulary: ``AirflowFailException``
(no retry) for errors no retry can fix or whose retry could send a message twice, the error itself
(Airflow retries it) otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from relay_integrations.errors import RelayError
from relay_integrations.retry_policy import could_send_twice, is_permanent
from relay_integrations.waiting import as_utc


def first_try_began(context: Mapping[str, Any]) -> datetime | None:
    """When the DAG run started (UTC): the earliest moment an earlier try of this task can have sent.

    A naive ``start_date`` is UTC, as Airflow stores it, not the worker's local time (read as local
    time, a worker east of UTC would look for earlier sends only after they happened).
    """
    return as_utc(getattr(context.get("dag_run"), "start_date", None))


def invalid_input(what: str, error: ValidationError) -> AirflowFailException:
    """Bad input never gets better on a retry: every problem, by field, and no retry."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}" for item in error.errors()
    )
    return AirflowFailException(f"invalid {what}: {problems}")


def task_failure(error: RelayError, what: str, *, relay_dedupes: bool = True,
                 retry_looks_first: bool = True) -> AirflowException | RelayError:
    """What to raise for a relay error that ends a task: ``AirflowFailException`` when no retry can
    fix it or a retry could send twice, else the error itself so that Airflow retries it.

    :param relay_dedupes: the relay recognises a repeated send by its key (sends only).
    :param retry_looks_first: a retry looks for an earlier send on the relay before sending (sends only).
    """
    if is_permanent(error):
        return AirflowFailException(f"{what}: {error} (not retried: another attempt cannot fix this)")
    if could_send_twice(error, relay_dedupes=relay_dedupes, retry_looks_first=retry_looks_first):
        return AirflowFailException(
            f"{what}: {error}; the relay may have taken the message and cannot refuse a repeat, so the task is "
            "not retried (turn look_for_earlier_send on to retry safely)")
    return error


@contextmanager
def relay_errors_classified(what: str, *, relay_dedupes: bool = True, retry_looks_first: bool = True) -> Iterator[None]:
    """Relay errors inside become what :func:`task_failure` says: fail at once, or raised for a retry."""
    try:
        yield
    except RelayError as error:
        raise task_failure(error, what, relay_dedupes=relay_dedupes, retry_looks_first=retry_looks_first) from None
