"""What Airflow's ProvidersManager learns about this provider (entry point ``apache_airflow_provider``).

The connection form is declared here as data (``conn-fields`` / ``ui-field-behaviour``), as Airflow 3.2+
expects, so that listing providers never imports a hook.
"""

from __future__ import annotations

from typing import Any

from airflow_provider import __version__

_INTEGRATION = "Message relays"
_DIALECTS = ["phonerelay", "relaysms", "coop", "smsgate"]


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow validates against its ``provider_info.schema.json``."""
    return {
        "package-name": "relay-integrations",
        "name": "Message relays",
        "description": (
            "Send SMS, WhatsApp, Telegram, iMessage, email and push notifications through message relays "
            "(phonerelay, relaysms, coop, smsgate), run campaigns, wait for delivery and react to replies."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://github.com/relay-integrations/relay-integrations",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider.hooks.relay"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider.operators.relay"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider.sensors.relay"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider.triggers.relay"]}],
        "notifications": ["airflow_provider.notifications.relay.RelayNotifier"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider.hooks.relay.RelayHook",
                "connection-type": "relay",
                "hook-name": "Message relay",
                "conn-fields": {
                    "dialect": {
                        "label": "Relay API",
                        "description": "Which relay API the host speaks: " + ", ".join(_DIALECTS) + ".",
                        "schema": {"type": "string", "enum": _DIALECTS},
                    },
                    "phone_id": {
                        "label": "Phone id",
                        "description": "Default phone_id for phonerelay sends, e.g. phone_main.",
                        "schema": {"type": ["string", "null"], "examples": ["phone_main"]},
                    },
                    "sender": {
                        "label": "Sender",
                        "description": (
                            "Default sending number or address (relaysms 'from', coop fromNumber), e.g. +1987654321."
                        ),
                        "schema": {"type": ["string", "null"], "examples": ["+1987654321"]},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Per-request timeout, e.g. 10.0 (the default).",
                        "schema": {"type": ["number", "null"], "default": 10.0, "minimum": 0, "examples": [10.0]},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": (
                            "Retries of retry-safe requests on 429/5xx/connection errors, e.g. 3 (the default)."
                        ),
                        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0, "examples": [3]},
                    },
                    "webhook_inbox_url": {
                        "label": "Webhook inbox",
                        "description": (
                            "Where RelayWebhookSensor reads webhook events: a receiver URL "
                            "(read with the API key) or a local inbox SQLite path, "
                            "e.g. http://127.0.0.1:8099 or ~/relay-inbox.db."
                        ),
                        "schema": {
                            "type": ["string", "null"],
                            "examples": ["http://127.0.0.1:8099", "~/relay-inbox.db"],
                        },
                    },
                    "webhook_inbox_api_key": {
                        "label": "Webhook inbox API key",
                        "description": (
                            "The webhook receiver's API key (relay webhooks serve --api-key); "
                            "required when the inbox is a receiver URL. The relay's key is never sent to it."
                        ),
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "ledger_conn_id": {
                        "label": "Campaign ledger connection",
                        "description": (
                            "Connection id of the database every worker shares for the campaign ledger "
                            "(a postgres connection, or any connection whose URI SQLAlchemy takes). Needed "
                            "for exactly-once sends when retries may run on another machine (Celery, "
                            "Kubernetes executors), e.g. postgres_ledger. Empty: a local SQLite file on the worker."
                        ),
                        "schema": {"type": ["string", "null"], "examples": ["postgres_ledger"]},
                    },
                },
                "ui-field-behaviour": {
                    # The port stays visible: the UI's Test button sends the stored port (NULL as 0)
                    # and Airflow refuses a test whose port differs from the stored one.
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "Relay base URL", "login": "Login (smsgate)", "password": "API key",
                                   "port": "Port (of the base URL)"},
                    "placeholders": {
                        "host": "http://127.0.0.1:8080/smsgate",
                        "login": "only smsgate uses a login",
                        "password": "the relay's API key",
                        "port": "8080",
                        "dialect": "smsgate",
                        "phone_id": "phone_main",
                        "sender": "+1987654321",
                        "webhook_inbox_url": "http://127.0.0.1:8099",
                    },
                },
            }
        ],
    }
