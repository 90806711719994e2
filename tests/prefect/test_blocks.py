"""The blocks: Prefect's standard block checks, registration, secrets, clients, notifications."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from prefect import flow
from prefect.blocks.abstract import NotificationError
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from relay_prefect_helpers import API_KEY, credentials_for, texts_sent_to

import prefect_blocks
from prefect_blocks import RelayCredentials, RelayNotification, RelayWebhookInbox
from relay_integrations.client import AsyncRelayClient, RelayClient
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.webhooks.inbox import WebhookInbox


class TestRelayCredentialsStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return RelayCredentials


class TestRelayNotificationStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return RelayNotification


class TestRelayWebhookInboxStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return RelayWebhookInbox


def test_block_type_slugs_are_distinct_and_package_has_version() -> None:
    slugs = {b.get_block_type_slug() for b in (RelayCredentials, RelayNotification, RelayWebhookInbox)}
    assert slugs == {"relay-credentials", "relay-notification", "relay-webhook-inbox"}
    assert prefect_blocks.__version__


def test_automation_action_reads_naturally() -> None:
    # Prefect's UI describes a notification action as "Send a <block type name, lower case>
    # notification using <block>".
    described = f"Send a {RelayNotification.get_block_type_name().lower()} notification"
    assert "notification notification" not in described
    assert described == "Send a relay message notification"
    assert RelayNotification.get_block_type_slug() == "relay-notification"  # saved blocks stay valid


def test_cli_registers_every_block() -> None:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "prefect_blocks"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    async def registered() -> set[str]:
        async with get_client() as client:
            return {t.slug for t in await client.read_block_types()}

    import anyio

    slugs = anyio.run(registered)
    assert {"relay-credentials", "relay-notification", "relay-webhook-inbox"} <= slugs


def test_credentials_never_show_the_key(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "smsgate")
    for text in (repr(credentials), str(credentials), credentials.model_dump_json()):
        assert API_KEY not in text
    with credentials.get_client() as client:
        assert isinstance(client, RelayClient)
        assert client.dialect.name == "smsgate"
        assert API_KEY not in repr(client)


def test_credentials_round_trip_through_the_server(relay: ReferenceRelayProcess) -> None:
    name = f"creds-{uuid.uuid4().hex[:8]}"
    credentials_for(relay, "phonerelay").save(name)
    loaded = RelayCredentials.load(name)
    assert loaded.api_key.get_secret_value() == API_KEY
    assert loaded.dialect == "phonerelay"
    assert loaded.phone_id == "phone_main"
    with loaded.get_client() as client:
        assert client.health()


def test_invalid_dialect_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="dialect"):
        RelayCredentials(base_url="http://127.0.0.1:1", dialect="twilio", api_key="k")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_async_client(relay: ReferenceRelayProcess) -> None:
    async with credentials_for(relay, "coop").get_async_client() as client:
        assert isinstance(client, AsyncRelayClient)
        assert await client.health()


def test_webhook_inbox_block(tmp_path: os.PathLike[str]) -> None:
    local = RelayWebhookInbox(location=str(tmp_path) + "/inbox.db")
    assert not local.is_remote
    with local.get_inbox() as inbox:
        assert isinstance(inbox, WebhookInbox)
    remote = RelayWebhookInbox(location="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="api_key"):
        remote.get_inbox()
    secret_remote = RelayWebhookInbox(location="http://127.0.0.1:9", api_key="inbox-secret-1")
    assert "inbox-secret-1" not in repr(secret_remote)
    with secret_remote.get_inbox() as inbox:
        assert "inbox-secret-1" not in repr(inbox)


# --- notifications -----------------------------------------------------------------------------


def test_notify_sends_to_every_recipient(relay: ReferenceRelayProcess) -> None:
    first, second = "+15550101001", "+15550101002"
    block = RelayNotification(credentials=credentials_for(relay, "phonerelay"), to=[first, second])
    block.notify("disk almost full", subject="ALERT")
    for address in (first, second):
        texts = texts_sent_to(relay, "phonerelay", address)
        assert texts == ["ALERT\ndisk almost full"]


def test_notify_failure_raises_notification_error_with_the_relays_answer(relay: ReferenceRelayProcess) -> None:
    block = RelayNotification(
        credentials=credentials_for(relay, "phonerelay", api_key="wrong-key-123", max_retries=0),
        to=["+15550101003"],
    )
    with pytest.raises(NotificationError) as caught:
        block.notify("never delivered")
    assert "401" in caught.value.log or "403" in caught.value.log
    assert "wrong-key-123" not in caught.value.log
    assert texts_sent_to(relay, "phonerelay", "+15550101003") == []


def test_notify_tries_every_recipient_before_failing(relay: ReferenceRelayProcess) -> None:
    good = "+15550101004"
    block = RelayNotification(credentials=credentials_for(relay, "relaysms"), to=["not-a-number", good])
    with pytest.raises(NotificationError) as caught:
        block.notify("partial")
    assert "not-a-number" in caught.value.log
    assert texts_sent_to(relay, "relaysms", good) == ["partial"]


@pytest.mark.anyio
async def test_notify_as_an_automation_does(relay: ReferenceRelayProcess) -> None:
    """Prefect's SendNotification action: load the saved block, ``await block.notify`` under raise_on_failure."""
    name = f"pager-{uuid.uuid4().hex[:8]}"
    address = "+15550101005"
    await RelayNotification(credentials=credentials_for(relay, "coop"), to=[address], channel="sms").asave(name)
    block = await RelayNotification.aload(name)
    with block.raise_on_failure():
        await block.notify(subject="Flow run failed", body="etl-nightly crashed")
    assert texts_sent_to(relay, "coop", address) == ["Flow run failed\netl-nightly crashed"]


def test_notify_from_a_flow_failure_hook(relay: ReferenceRelayProcess) -> None:
    name = f"oncall-{uuid.uuid4().hex[:8]}"
    address = "+15550101006"
    RelayNotification(credentials=credentials_for(relay, "phonerelay"), to=[address]).save(name)

    def page_on_call(flow: object, flow_run: object, state: object) -> None:
        del flow, state
        RelayNotification.load(name).notify(f"{flow_run.name} failed", subject="Prefect")  # type: ignore[attr-defined]

    @flow(on_failure=[page_on_call])
    def doomed() -> None:
        raise RuntimeError("boom")

    state = doomed(return_state=True)
    assert state.is_failed()
    texts = texts_sent_to(relay, "phonerelay", address)
    assert len(texts) == 1 and texts[0].startswith("Prefect\n") and texts[0].endswith(" failed")
