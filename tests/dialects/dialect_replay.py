"""Replays one dialect request through httpx against a respx route that answers with a doc's example.

The dialects do no I/O; this puts their requests on the wire (JSON encoding, query strings, path
quoting, auth headers) exactly as the clients do, and hands back what the relay would have seen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
import respx

from relay_integrations.dialects.base import Dialect, RelayRequest

BASE_URL = "https://relay.example"
API_KEY = "sk_live_9f8e7d6c5b4a"


@dataclass
class Replayed:
    """What went over the wire and what came back."""

    request: httpx.Request
    response: httpx.Response

    @property
    def sent_json(self) -> Any:
        return json.loads(self.request.content) if self.request.content else None

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def raw_path(self) -> str:
        return self.request.url.raw_path.decode("ascii").split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.url.params)


def replay(
    dialect: Dialect,
    request: RelayRequest,
    *,
    status: int = 200,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    api_key: str = API_KEY,
    login: str | None = None,
    token: str | None = None,
) -> Replayed:
    """Send ``request`` as a client would and answer it with ``status``/``body``."""
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        # respx matches the decoded path; the raw (quoted) one is checked via Replayed.raw_path.
        route = mock.route(method=request.method, path=unquote(request.path.split("?", 1)[0])).respond(
            status, json=body, headers=dict(headers or {})
        )
        with httpx.Client(base_url=BASE_URL) as client:
            response = client.request(
                request.method,
                request.path,
                json=request.json,
                params=request.params,
                headers={**dialect.auth_headers(api_key, login, token), **dict(request.headers)},
            )
        sent = route.calls.last.request
    return Replayed(request=sent, response=response)
