"""Which campaign store an operator uses, and the warnings a local one deserves.

The store is named by, in order: the operator's ``ledger`` (a path or URL), its ``ledger_conn_id``,
the relay connection's extra ``ledger_conn_id``; else a local SQLite file on the worker. A
``postgres`` connection becomes ``postgresql+psycopg://``; any other connection is used through
its URI, which SQLAlchemy must accept. The URL (with its password) stays in memory: only
:func:`~relay_integrations.campaign.campaign_store.display_url` forms are ever logged.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from relay_integrations.campaign.campaign_store import StoreLocation, display_url

# Executors that run every try of a task on one machine (so a local SQLite ledger is seen by retries).
_ONE_MACHINE_EXECUTORS = ("LocalExecutor", "SequentialExecutor")


#: How a campaign reference names a store held by an Airflow connection (never its URL: no password in XComs).
CONNECTION_PREFIX = "airflow-connection:"


def ledger_reference(conn_id: str | None) -> str | None:
    """The store reference a campaign result carries when its ledger came from ``conn_id``."""
    return f"{CONNECTION_PREFIX}{conn_id}" if conn_id else None


def tracking_store_url(reference: str) -> str | URL:
    """What a sensor opens for a campaign reference's ``store``: a connection's URL, else the reference."""
    if reference.startswith(CONNECTION_PREFIX):
        return ledger_url_from_connection(reference.removeprefix(CONNECTION_PREFIX))
    return reference


async def atracking_store_url(reference: str) -> str | URL:
    """:func:`tracking_store_url` for triggers (connections read without blocking the event loop)."""
    if reference.startswith(CONNECTION_PREFIX):
        conn_id = reference.removeprefix(CONNECTION_PREFIX)
        return _ledger_url(await BaseHook.aget_connection(conn_id), conn_id)
    return reference


def ledger_url_from_connection(conn_id: str) -> URL:
    """The SQLAlchemy URL of an Airflow connection that names a database."""
    return _ledger_url(BaseHook.get_connection(conn_id), conn_id)


def _ledger_url(conn: Any, conn_id: str) -> URL:
    from airflow.sdk.log import mask_secret

    if conn.password:
        mask_secret(conn.password)
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create("postgresql+psycopg", username=conn.login or None, password=conn.password or None,
                          host=conn.host or None, port=conn.port or None, database=conn.schema or None)
    try:
        return make_url(conn.get_uri())
    except ArgumentError:
        raise AirflowFailException(
            f"ledger_conn_id {conn_id!r}: a {conn.conn_type} connection whose URI SQLAlchemy cannot use") from None


def resolve_ledger(
    ledger: str | None, ledger_conn_id: str | None, relay_ledger_conn_id: str | None
) -> StoreLocation | None:
    """The store to use (None: the default local file)."""
    if ledger:
        return ledger
    conn_id = ledger_conn_id or relay_ledger_conn_id
    if conn_id:
        return ledger_url_from_connection(conn_id)
    return None


def executor_name() -> str | None:
    try:
        from airflow.configuration import conf

        return str(conf.get("core", "executor"))
    except Exception:  # config unreadable on this worker: say nothing rather than guess
        return None


def is_local(location: StoreLocation | None) -> bool:
    return location is None or display_url(location).startswith("sqlite")


def warn_if_local_ledger(log: Any, location: StoreLocation | None, client: Any) -> None:
    """A local ledger on a relay that cannot de-duplicate is safe only when retries share the disk."""
    if not is_local(location) or client.capabilities.client_idempotency_keys:
        return
    executor = executor_name()
    if executor is None or any(name in executor for name in _ONE_MACHINE_EXECUTORS):
        return
    log.warning(
        "The campaign ledger is a local file but the executor is %s: a retry on another worker cannot see it, "
        "and %s cannot refuse a repeated message. Retries look every message up on the relay first; set "
        "ledger_conn_id (a database every worker reaches) for exactly-once sends.", executor, client.dialect.name)
