"""Settings of one reference relay instance, and the context its routes share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DIALECTS = ("phonerelay", "relaysms", "coop", "smsgate")
DEFAULT_API_KEY = "dev-key"
DEFAULT_LOGIN = "relay"
DEFAULT_NUMBERS = ("+1987654321",)
DEFAULT_PORT = 5110
MiB = 1024 * 1024


@dataclass
class ServerConfig:
    """How a reference relay behaves. Every field has a ``relay serve`` option.

    :param db_path: SQLite file, or ``:memory:``.
    :param api_key: the key every dialect accepts (relaysms until it is regenerated).
    :param login: smsgate Basic-auth user name.
    :param delivery_latency: seconds from acceptance to the final state.
    :param failure_rate: fraction of messages that fail, chosen by a seeded hash of the message id.
    :param webhook_secret: master secret of outgoing webhooks: each dialect signs with its own secret
        derived from it (:func:`relay_integrations.signing.derive_dialect_secret`); relaysms, whose
        doc names no signature, goes out unsigned unless ``webhook_secrets`` has a relaysms secret.
    :param webhook_secrets: dialect -> its own secret (verbatim), overriding the derived one;
        relaysms secrets are Standard Webhooks ``whsec_<base64>``.
    :param numbers: relaysms numbers the account owns (allowed ``from`` values).
    :param dialect: also serve this dialect at the root, so the doc's paths work verbatim.
    :param webhook_urls: dialect -> URL that receives every webhook of that dialect.
    :param synchronous: SQLite synchronous pragma (NORMAL or FULL); see :mod:`.store`.
    :param balance: relaysms starting balance in USD.
    :param price_per_segment: relaysms debit per SMS segment in USD.
    :param seed: seed of the failure-rate draw.
    :param webhook_retry_base: first webhook retry delay in seconds (doubles, with jitter).
    :param webhook_max_attempts: attempts before a webhook delivery is given up ("dead").
    :param sim: serve the ``/_sim/*`` test hooks (``relay serve --no-sim`` turns them off: 404).
    :param allow_external_webhooks: deliver webhooks to non-loopback hosts too (off: they are recorded as skipped).
    """

    db_path: str = ":memory:"
    api_key: str = DEFAULT_API_KEY
    login: str = DEFAULT_LOGIN
    delivery_latency: float = 1.0
    failure_rate: float = 0.0
    webhook_secret: str | None = None
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=lambda: list(DEFAULT_NUMBERS))
    dialect: str | None = None
    webhook_urls: dict[str, str] = field(default_factory=dict)
    synchronous: str = "NORMAL"
    balance: float = 1000.0
    price_per_segment: float = 0.015
    seed: str = "relay-sim"
    webhook_retry_base: float = 0.5
    webhook_max_attempts: int = 12
    max_body_bytes: int = 1 * MiB
    max_batch_body_bytes: int = 16 * MiB
    allow_external_webhooks: bool = False
    device_id: str = "sim-device-0001"
    sim: bool = True

    def __post_init__(self) -> None:
        if self.dialect is not None and self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if self.delivery_latency < 0:
            raise ValueError("delivery_latency must not be negative")
        if self.webhook_retry_base <= 0 or self.webhook_max_attempts < 1:
            raise ValueError("webhook_retry_base must be positive and webhook_max_attempts at least 1")
        for name in self.webhook_urls:
            if name not in DIALECTS:
                raise ValueError(f"webhook_urls: unknown dialect {name!r}")
        from relay_integrations.signing import check_dialect_secret

        for name, secret in self.webhook_secrets.items():
            if name not in DIALECTS:
                raise ValueError(f"webhook_secrets: unknown dialect {name!r}")
            check_dialect_secret(name, secret)

    def webhook_secret_for(self, dialect: str) -> str | None:
        """The secret ``dialect``'s webhooks are signed with, ``None`` for unsigned."""
        from relay_integrations.signing import derive_dialect_secret

        if dialect in self.webhook_secrets:
            return self.webhook_secrets[dialect]
        if dialect == "relaysms" or not self.webhook_secret:  # relaysms signs only when told to
            return None
        return derive_dialect_secret(self.webhook_secret, dialect)

    def __repr__(self) -> str:  # secrets never in reprs
        return (f"ServerConfig(db_path={self.db_path!r}, dialect={self.dialect!r}, "
                f"delivery_latency={self.delivery_latency!r}, failure_rate={self.failure_rate!r}, api_key=***)")


def env_default(name: str, default: str | None = None) -> str | None:
    """``RELAY_<NAME>`` from the environment, else ``default``."""
    return os.environ.get(f"RELAY_{name}", default)
