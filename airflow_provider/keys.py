"""Keys derived from where a task runs, so that re-running the same work never sends twice.

A task retry keeps dag_id, run_id, task_id and map_index, so a key made of them is the same on every
try; a new DAG run (or another mapped instance) gets a new key. The key scheme itself is the core's
(:func:`relay_integrations.idempotency.single_send_key`), shared with the Prefect tasks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from relay_integrations.idempotency import single_send_key

# The namespace of campaign names (derive_campaign_id), fixed: the same task instance must name the same
# campaign on every machine and release.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/relay-integrations/airflow")


def task_identity(context: Mapping[str, Any]) -> tuple[str, str, str, int]:
    """``(dag_id, run_id, task_id, map_index)`` of the running task instance in ``context``."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        raise ValueError("the Airflow context has no task instance to derive a key from")
    map_index = getattr(ti, "map_index", -1)
    return str(ti.dag_id), str(ti.run_id), str(ti.task_id), int(-1 if map_index is None else map_index)


def derive_idempotency_key(context: Mapping[str, Any], *, purpose: str = "send") -> str:
    """A UUID that is the same on every try of one task instance and differs between instances.

    A UUID-shaped key suits every relay: phonerelay's ``idempotency_key`` and smsgate's client-chosen
    message ``id``.

    :param purpose: what the key is for, so two sends from one task (say a send and a notification)
        get different keys.
    """
    dag_id, run_id, task_id, map_index = task_identity(context)
    return single_send_key("airflow", purpose, dag_id, run_id, task_id, str(map_index))


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:limit] or "x"


def derive_campaign_id(context: Mapping[str, Any]) -> str:
    """A readable campaign id, stable across tries of one task instance: ``<dag>.<task>[.<map>]-<hash>``.

    The hash covers the run id so two runs of the DAG never share a campaign (and its idempotency keys).
    It is a name, not a key: it names the campaign's ledger file and is part of every row key, so it
    stays as earlier releases made it (a retry after an upgrade must find its ledger).
    """
    dag_id, run_id, task_id, map_index = task_identity(context)
    digest = uuid.uuid5(NAMESPACE, "\x1f".join(("campaign", dag_id, run_id, task_id, str(map_index)))).hex[:12]
    where = f"{_slug(dag_id, 40)}.{_slug(task_id, 40)}" + (f".{map_index}" if map_index >= 0 else "")
    return f"{where}-{digest}"
