"""The Prefect tasks' ledger: a URL, or a saved prefect-sqlalchemy / Secret block naming a shared database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.system import Secret
from pydantic import SecretStr
from relay_prefect_helpers import credentials_for, texts_sent_to, unique_number
from sqlalchemy.engine import make_url

from prefect_blocks.tasks import send_campaign, send_message
from relay_integrations.campaign.campaign_store import CampaignStore
from relay_integrations.models import SendReceipt
from relay_integrations.process import ReferenceRelayProcess


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"phone": unique_number(), "name": f"P{i}"} for i in range(n)]


def test_campaign_ledger_from_a_saved_sqlalchemy_connector_block(
    relay: ReferenceRelayProcess, postgres_url: str
) -> None:
    from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector

    url = make_url(postgres_url)
    block_name = f"relay-ledger-{uuid.uuid4().hex[:8]}"
    SqlAlchemyConnector(connection_info=ConnectionComponents(
        driver="postgresql+psycopg", username=url.username, host=url.host, port=url.port, database=url.database,
    )).save(block_name)
    credentials = credentials_for(relay, "relaysms", ledger=SecretStr(f"sqlalchemy-connector/{block_name}"))
    rows = _rows(3)
    campaign_id = f"block-ledger-{uuid.uuid4().hex[:8]}"

    @flow
    def twice() -> list[dict[str, Any]]:
        return [send_campaign(credentials, "Hi {{ name }}", rows, campaign_id, idempotency_scope="campaign")
                for _ in range(2)]

    first, second = twice()
    assert first["counts"]["accepted"] == 3 and second["counts"]["already_sent"] == 3
    with CampaignStore.open(postgres_url) as store:
        assert store.accepted_count(campaign_id) == 3
    for row in rows:
        assert texts_sent_to(relay, "relaysms", row["phone"]) == [f"Hi {row['name']}"]


def test_send_message_claims_in_a_ledger_named_by_a_secret_block(
    relay: ReferenceRelayProcess, postgres_url: str
) -> None:
    block_name = f"relay-ledger-url-{uuid.uuid4().hex[:8]}"
    Secret(value=postgres_url).save(block_name)
    credentials = credentials_for(relay, "relaysms")
    to = unique_number()
    key = f"once-{uuid.uuid4().hex}"

    @flow
    def twice() -> list[SendReceipt]:
        return [send_message(credentials, to=to, text="claimed once", idempotency_key=key,
                             ledger=f"secret/{block_name}") for _ in range(2)]

    first, second = twice()
    assert not first.duplicate and second.duplicate and second.message_id == first.message_id
    assert texts_sent_to(relay, "relaysms", to) == ["claimed once"]
    with CampaignStore.open(postgres_url) as store:
        assert store.accepted_count("prefect.send_message") == 1


def test_a_ledger_url_never_shows_its_password(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "relaysms", ledger=SecretStr("postgresql://u:pw-9f8e7d@127.0.0.1:1/db"))
    assert "pw-9f8e7d" not in repr(credentials) and "pw-9f8e7d" not in str(credentials.model_dump())


@pytest.mark.parametrize("reference", ["sqlalchemy-connector/missing-block-x", "secret/missing-block-y"])
def test_a_missing_ledger_block_is_a_clear_error(relay: ReferenceRelayProcess, reference: str) -> None:
    credentials = credentials_for(relay, "relaysms", ledger=SecretStr(reference))
    with pytest.raises(ValueError, match="missing-block"):
        credentials.ledger_location()
