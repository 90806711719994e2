"""The example flow (examples/prefect/relay_campaign_flow.py) end to end under the session's Prefect test server.

A private reference relay and webhook receiver, every dialect's webhooks registered by
``examples/demo.py``'s own code, the ``RELAY_*`` variables the demo exports; then the relay is asked
what it holds and Prefect what artifacts the run left.
"""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS_CSV = ROOT / "examples" / "data" / "recipients.csv"
API_KEY = "examples-relay-key-7d3b21"
RECEIVER_KEY = "examples-receiver-key-c41e8f"
WEBHOOK_SECRET = "whsec_ZXhhbXBsZXMtcHJlZmVjdC13ZWJob29rLXNlY3JldA=="
BAD_ADDRESSES = {"not-a-number", "+1555", ""}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return _load(ROOT / "examples" / "demo.py", "relay_examples_demo")


@pytest.fixture(scope="module")
def example_flow_module() -> ModuleType:
    return _load(ROOT / "examples" / "prefect" / "relay_campaign_flow.py", "relay_examples_prefect_flow")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo: ModuleType) -> Iterator[tuple[ReferenceRelayProcess,
                                                                                         WebhookReceiverProcess]]:
    tmp = tmp_path_factory.mktemp("prefect-examples")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, delivery_latency=0.1,
                               webhook_secret=WEBHOOK_SECRET, log_path=tmp / "relay.log") as relay, \
            WebhookReceiverProcess(db_path=tmp / "inbox.db", secrets=[WEBHOOK_SECRET], api_key=RECEIVER_KEY,
                                   log_path=tmp / "receiver.log") as receiver:
        demo.register_webhooks(relay, receiver, WEBHOOK_SECRET)
        yield relay, receiver


def _stored(relay: ReferenceRelayProcess, direction: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{relay.base_url}/_sim/messages", params={"direction": direction},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def test_example_flow_end_to_end(
    demo: ModuleType,
    example_flow_module: ModuleType,
    stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    relay, receiver = stack
    env = demo.example_env(relay, receiver)
    env.pop("RELAY_CAMPAIGN_LEDGER_DIR", None)  # the session's scratch ledger directory stays
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    state = example_flow_module.relay_campaign_example(poll_interval=0.2, return_state=True)
    assert state.is_completed(), state
    summary = state.result()

    with RECIPIENTS_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    good = {r["phone"] for r in rows if r["phone"] not in BAD_ADDRESSES}
    assert len(rows) == 51 and len(good) == 47  # one duplicate row, three bad rows

    # What the relay holds: every good recipient exactly once (the duplicate row too), bad rows never.
    outbound = _stored(relay, "outbound")
    assert Counter(m["to"] for m in outbound) == Counter({address: 1 for address in good})
    first = next(m for m in outbound if m["to"] == rows[0]["phone"])
    assert first["text"] == (f"Hi {rows[0]['first_name']}, your order {rows[0]['order_id']} arrives today around "
                             f"{rows[0]['eta']}. Reply YES to confirm or STOP to opt out.")
    states = {m["to"]: m["state"] for m in outbound}
    assert {a for a, s in states.items() if s == "failed"} == {"+14155550000"}
    assert {a for a, s in states.items() if s == "delivered"} == good - {"+14155550000"}

    # The simulated reply reached the relay, the receiver and the flow.
    inbound = _stored(relay, "inbound")
    assert [(m["from"], m["text"]) for m in inbound] == [(rows[0]["phone"], "YES, see you then!")]
    events = httpx.get(f"{receiver.base_url}/events", params={"kind": "inbound"},
                       headers={"Authorization": f"Bearer {RECEIVER_KEY}"}, timeout=10).json()
    assert [(e["sender"], e["text"]) for e in events] == [(rows[0]["phone"], "YES, see you then!")]

    # The flow's own account agrees with the relay's.
    assert summary["rows"] == 51 and summary["invalid"] == 3
    assert summary["sent"] == 47 and summary["delivered"] == 46
    assert summary["failed"] == ["+14155550000"]
    assert summary["replies"] == 1 and summary["reply"] == {"from": rows[0]["phone"], "text": "YES, see you then!"}
    assert summary["inbound_stats"]["messages_total"] == 1
    printed = capsys.readouterr().out
    assert "sent 47, delivered 46, failed 1 (+14155550000), replies 1" in printed
    assert API_KEY not in printed and RECEIVER_KEY not in printed

    # Artifacts of the run: the campaign's progress, report and summary, and the example's outcome.
    # Straight to the API (as tests/prefect/test_campaign.py does): the client's read_artifacts sends
    # null filters this server refuses.
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", timeout=10, json={
        "artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}, "limit": 50,
    })
    answer.raise_for_status()
    artifacts = {a["key"]: a for a in answer.json()}
    assert {"campaign-delivery-day-progress", "campaign-delivery-day-report", "campaign-delivery-day-summary",
            "relay-campaign-example-outcome"} <= set(artifacts), sorted(artifacts)
    assert "| 51 | 3 | 47 | 46 | 1 | 1 |" in str(artifacts["relay-campaign-example-outcome"]["data"])


def test_readme_says_block_register_needs_an_api_and_names_a_real_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """`prefect block register` without PREFECT_API_URL starts a temporary server with a 20 s limit;
    the README's way out must be a setting Prefect actually reads."""
    from prefect.settings import Settings

    readme = (ROOT / "README.md").read_text()
    assert "export PREFECT_API_URL=" in readme
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120" in readme
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    assert Settings().server.ephemeral.startup_timeout_seconds == 120
