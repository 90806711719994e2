"""Prefect as users run it: a real ``prefect server start`` process, the ready flow served with
``.serve()`` and deployed to a process work pool with a worker, the CLI's block and artifact
listings, and an automation that alerts through a RelayNotification block from the server.

Every process is a child in its own process group, on loopback, stopped in fixture teardown."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_processes import PrefectServer, wait_for
from relay_prefect_helpers import credentials_for, texts_sent_to, unique_number

from prefect_blocks import RelayNotification
from prefect_blocks.flows import relay_campaign_flow
from relay_integrations.process import ReferenceRelayProcess

# A flow run of the ready flow: start a process, load blocks, send, wait for "sent". Generous for
# a loaded 2-core machine; the waits end as soon as the condition holds.
RUN_TIMEOUT = 300.0


@contextmanager
def talking_to(server: PrefectServer) -> Iterator[None]:
    """Make this test process's Prefect client talk to ``server`` (not the session's test harness)."""
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def save_credentials(server: PrefectServer, relay: ReferenceRelayProcess) -> str:
    name = f"relay-{uuid.uuid4().hex[:8]}"
    with talking_to(server):
        credentials_for(relay, "phonerelay").save(name)
    return name


def campaign_parameters(credentials: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    rows = [{"phone": unique_number(), "name": f"Customer {i}"} for i in range(2)]
    return {
        "credentials": credentials,
        "template": "Hi {{ name }}, your parcel arrives today",
        "recipients": rows,
        "campaign_id": f"real server {uuid.uuid4().hex[:8]}",
        "wait_for_state": "sent",
        "delivery_timeout": 120,
        "poll_interval": 0.5,
    }, rows


def run_deployment(server: PrefectServer, deployment: str, parameters: dict[str, Any]) -> str:
    """``prefect deployment run <deployment> --watch``; returns what it printed, once Completed."""
    done = server.cli("deployment", "run", deployment, "--params", json.dumps(parameters), "--watch",
                      "--watch-interval", "1", "--watch-timeout", str(int(RUN_TIMEOUT)), timeout=RUN_TIMEOUT + 60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Completed" in output, output[-3000:]
    return output


def deployment_exists(server: PrefectServer, flow_name: str, deployment_name: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{server.api_url}/deployments/name/{flow_name}/{deployment_name}", timeout=10)
    found: dict[str, Any] | None = answer.json() if answer.status_code == 200 else None
    return found


def assert_campaign_sent(relay: ReferenceRelayProcess, rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert texts_sent_to(relay, "phonerelay", row["phone"]) == [
            f"Hi {row['name']}, your parcel arrives today"
        ]


def test_served_flow_runs_to_completed(real_prefect_server: PrefectServer, relay: ReferenceRelayProcess,
                                       tmp_path: Path) -> None:
    """The README's "deploy it as is": ``relay_campaign_flow.serve()``, run from the CLI."""
    server = real_prefect_server
    credentials = save_credentials(server, relay)
    script = tmp_path / "serve_campaign.py"
    script.write_text(textwrap.dedent("""\
        from prefect_blocks.flows import relay_campaign_flow

        if __name__ == "__main__":
            relay_campaign_flow.serve(name="served")
    """))
    served = server.spawn([str(script)], tmp_path / "serve.log", cwd=tmp_path)
    try:
        wait_for(lambda: deployment_exists(server, "relay-campaign", "served"), 180,
                 f"the served deployment (log {tmp_path / 'serve.log'})")
        parameters, rows = campaign_parameters(credentials)
        run_deployment(server, "relay-campaign/served", parameters)
        assert_campaign_sent(relay, rows)
    finally:
        server.stop_child(served)


def test_deploy_to_a_process_work_pool_with_a_worker(real_prefect_server: PrefectServer,
                                                     relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    """``prefect deploy`` (prefect.yaml with a trigger) to a process pool, ``prefect worker start``."""
    server = real_prefect_server
    credentials = save_credentials(server, relay)
    pool = f"relay-pool-{uuid.uuid4().hex[:6]}"
    created = server.cli("work-pool", "create", pool, "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    (tmp_path / "campaign_flows.py").write_text("from prefect_blocks.flows import relay_campaign_flow  # noqa: F401\n")
    (tmp_path / "prefect.yaml").write_text(textwrap.dedent(f"""\
        name: relay-real-server-test
        prefect-version: 3.8.8
        build: null
        push: null
        pull:
          - prefect.deployments.steps.set_working_directory:
              directory: {tmp_path}
        deployments:
          - name: pooled
            entrypoint: campaign_flows.py:relay_campaign_flow
            work_pool:
              name: {pool}
            triggers:
              - type: event
                enabled: true
                match:
                  prefect.resource.id: relay.test.never-{uuid.uuid4().hex[:6]}
                expect:
                  - relay.test.never
    """))
    deployed = server.cli("deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml"), cwd=tmp_path)
    assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-3000:]
    deployment = deployment_exists(server, "relay-campaign", "pooled")
    assert deployment is not None
    # `prefect deploy` used to crash after creating the deployment, before creating its triggers.
    triggers = server.api("GET", f"/automations/related-to/prefect.deployment.{deployment['id']}")
    assert len(triggers) == 1, triggers
    # The Python way to the same pool: `flow.deploy()` used to create nothing.
    with talking_to(server):
        relay_campaign_flow.from_source(  # type: ignore[union-attr]
            source=str(tmp_path), entrypoint="campaign_flows.py:relay_campaign_flow",
        ).deploy(name="pooled-from-python", work_pool_name=pool, print_next_steps=False)
    assert deployment_exists(server, "relay-campaign", "pooled-from-python") is not None

    worker = server.spawn(["-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
                          tmp_path / "worker.log", cwd=tmp_path)
    try:
        parameters, rows = campaign_parameters(credentials)
        run_deployment(server, "relay-campaign/pooled", parameters)
        assert_campaign_sent(relay, rows)
    finally:
        server.stop_child(worker)


def test_cli_lists_blocks_and_artifacts(real_prefect_server: PrefectServer, relay: ReferenceRelayProcess) -> None:
    """``prefect block ls`` / ``artifact ls`` / ``artifact inspect``: the client's explicit nulls
    must be accepted by the server (FastAPI from 0.151 rejects them: see constraints/prefect.txt)."""
    server = real_prefect_server
    credentials = save_credentials(server, relay)
    key = f"relay-cli-check-{uuid.uuid4().hex[:8]}"

    @flow
    def leave_an_artifact() -> None:
        create_markdown_artifact(markdown="# listed", key=key, description="CLI listing check")

    with talking_to(server):
        leave_an_artifact()

    blocks = server.cli("block", "ls")
    assert blocks.returncode == 0, (blocks.stdout + blocks.stderr)[-3000:]
    assert credentials in blocks.stdout and "relay-credentials" in blocks.stdout
    artifacts = server.cli("artifact", "ls")
    assert artifacts.returncode == 0, (artifacts.stdout + artifacts.stderr)[-3000:]
    assert key in artifacts.stdout
    inspected = server.cli("artifact", "inspect", key)
    assert inspected.returncode == 0, (inspected.stdout + inspected.stderr)[-3000:]
    assert "# listed" in inspected.stdout


def test_automation_alerts_through_a_relay_notification(real_prefect_server: PrefectServer,
                                                        relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    """A flow run fails; the server's automation sends the alert through our block to the relay."""
    server = real_prefect_server
    on_call = unique_number()
    flow_name = f"nightly-load-{uuid.uuid4().hex[:8]}"
    with talking_to(server):
        block_id = RelayNotification(credentials=credentials_for(relay, "phonerelay"), to=[on_call]).save(
            f"on-call-{uuid.uuid4().hex[:8]}")
    server.api("POST", "/automations/", json={
        "name": f"alert on {flow_name}",
        "trigger": {
            "type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Failed"],
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
            "threshold": 1, "within": 0,
        },
        "actions": [{"type": "send-notification", "block_document_id": str(block_id),
                     "subject": "Prefect alert", "body": "Flow {{ flow.name }} failed"}],
    })
    script = tmp_path / "failing_flow.py"
    script.write_text(textwrap.dedent(f"""\
        from prefect import flow

        @flow(name={flow_name!r})
        def nightly_load():
            raise RuntimeError("the warehouse is down")

        if __name__ == "__main__":
            assert nightly_load(return_state=True).is_failed()
    """))
    failing = server.spawn([str(script)], tmp_path / "failing.log", cwd=tmp_path)
    assert failing.wait(timeout=RUN_TIMEOUT) == 0, (tmp_path / "failing.log").read_text()[-3000:]
    # The automation runs inside the server process: wait for its message on the relay.
    (alert,) = wait_for(lambda: texts_sent_to(relay, "phonerelay", on_call), RUN_TIMEOUT,
                        f"the automation's alert to {on_call} (server log {server.log_path})", interval=0.5)
    assert alert == f"Prefect alert\nFlow {flow_name} failed"
