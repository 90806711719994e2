"""Helpers of the Prefect tests: relay credentials, the relay's test hooks, and a proxy that loses
a relay's answer after the relay acted on the request."""

from __future__ import annotations

import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun
from prefect.client.schemas.sorting import TaskRunSort

from prefect_blocks import RelayCredentials, RelayWebhookInbox
from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess

API_KEY = "test-key-4f9c2a"
WEBHOOK_SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tz"
INBOX_API_KEY = "inbox-key-77"


class WebhookSetup(NamedTuple):
    relay: ReferenceRelayProcess
    receiver: WebhookReceiverProcess
    inbox_path: Path

    @property
    def remote_inbox(self) -> RelayWebhookInbox:
        return RelayWebhookInbox(location=self.receiver.base_url, api_key=INBOX_API_KEY)


def unique_number() -> str:
    """A fresh US number (never ending in 0000, which the reference relay fails)."""
    number = f"+1555{uuid.uuid4().int % 10**7:07d}"
    return number[:-1] + "1" if number.endswith("0000") else number


def credentials_for(relay: ReferenceRelayProcess, dialect: str, **overrides: object) -> RelayCredentials:
    """Credentials for ``dialect`` on a reference relay."""
    fields: dict[str, object] = {
        "base_url": relay.url(dialect),
        "dialect": dialect,
        "api_key": relay.api_key,
        "login": relay.login,
        "phone_id": "phone_main" if dialect == "phonerelay" else None,
        "sender": "+1987654321" if dialect == "relaysms" else None,
        "timeout": 5.0,
        "max_retries": 2,
    }
    fields.update(overrides)
    return RelayCredentials(**fields)  # type: ignore[arg-type]


def sim_messages(relay: ReferenceRelayProcess, dialect: str, direction: str = "outbound") -> list[dict[str, Any]]:
    """What the relay stored for ``dialect`` (its test hook ``GET /_sim/messages``)."""
    response = httpx.get(
        f"{relay.base_url}/_sim/messages", params={"dialect": dialect, "direction": direction},
        headers={"Authorization": f"Bearer {relay.api_key}"}, timeout=5.0,
    )
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def texts_sent_to(relay: ReferenceRelayProcess, dialect: str, address: str) -> list[str]:
    """The text of every outbound message the relay stored for ``address``."""
    return [str(m["text"]) for m in sim_messages(relay, dialect) if m["to"] == address]


def inject_inbound(relay: ReferenceRelayProcess, dialect: str, sender: str, text: str, **extra: Any) -> dict[str, Any]:
    """``POST /_sim/inbound``: the relay receives a message (and posts its webhooks)."""
    response = httpx.post(
        f"{relay.base_url}/_sim/inbound", json={"dialect": dialect, "from": sender, "text": text, **extra},
        headers={"Authorization": f"Bearer {relay.api_key}"}, timeout=5.0,
    )
    response.raise_for_status()
    stored: dict[str, Any] = response.json()
    return stored


def task_runs_of(flow_state: State[Any]) -> list[TaskRun]:
    """The task runs of the flow run that ended in ``flow_state``, oldest first."""
    flow_run_id = flow_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs: list[TaskRun] = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200,
        )
    return runs


class AnswerDroppingProxy:
    """An HTTP proxy in front of a relay that forwards every request, but for the first
    ``drops`` requests matching ``method`` and ``path_suffix`` closes the connection instead of
    passing the relay's answer on: the relay acted, the client never heard.

    :param upstream: the relay's root URL.
    """

    def __init__(self, upstream: str, *, method: str = "POST", path_suffix: str = "", drops: int = 1) -> None:
        self.upstream = upstream.rstrip("/")
        self.method = method
        self.path_suffix = path_suffix
        self.drops_left = drops
        self.forwarded = 0
        self.dropped = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                del format, args

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers,
                                       timeout=10.0)
                if proxy._should_drop(self.command, self.path):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _should_drop(self, method: str, path: str) -> bool:
        with self._lock:
            self.forwarded += 1
            if method == self.method and path.split("?")[0].endswith(self.path_suffix) and self.drops_left > 0:
                self.drops_left -= 1
                self.dropped += 1
                return True
            return False

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, dialect: str) -> str:
        return f"{self.base_url}/{dialect}"

    def __enter__(self) -> AnswerDroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
