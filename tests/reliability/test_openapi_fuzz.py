"""Schemathesis against the reference relay's own OpenAPI document, one test per dialect.

The document is the app's ``/openapi.json`` (built with ``create_app()`` at collection time, so that
pytest lists one test per operation; a first test checks the running relay process serves exactly
that document). Every operation under a dialect's prefix gets generated requests, valid and invalid
ones, sent over HTTP to a relay process with that dialect's credentials.
Checked: every schemathesis check (none excluded): never a 5xx; every status code documented, with
the documented schema, content type and headers; schema-valid requests accepted and schema-violating
ones refused; 405s with a true ``Allow``; missing credentials refused. The document lists each
route's error answers in its dialect's shape (see relay_integrations/server/openapi.py).

``POST /relaysms/api/v1/api-key/regenerate`` is left out: it really rotates the key, after which
every later relaysms request would be a 401 and test nothing.
"""

from __future__ import annotations

import base64
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

API_KEY = "fuzz-key-0b7e1d"
LOGIN = "relay"
FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("RELAY_FUZZ_EXAMPLES", "15")), deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck),
)
AUTH_HEADERS = {
    "phonerelay": {"Authorization": f"Bearer {API_KEY}"},
    "relaysms": {"X-API-Key": API_KEY},
    "coop": {"Authorization": f"Bearer {API_KEY}"},
    "smsgate": {"Authorization": "Basic " + base64.b64encode(f"{LOGIN}:{API_KEY}".encode()).decode()},
}


@pytest.fixture(scope="module")
def fuzzed_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    """A private relay: fuzzing registers webhooks and rotates nothing that other tests rely on."""
    tmp: Path = tmp_path_factory.mktemp("fuzzed-relay")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, login=LOGIN, delivery_latency=0.1,
                               log_path=tmp / "relay.log") as relay:
        yield relay


def _openapi_document() -> dict[str, Any]:
    from relay_integrations.server import create_app

    document: dict[str, Any] = create_app(api_key=API_KEY, login=LOGIN).openapi()
    return document


# schemathesis.pytest.from_fixture (a schema loaded from the live process) breaks on pytest 9; loading
# the same document eagerly also gives one pytest item per operation.
relay_api = schemathesis.openapi.from_dict(_openapi_document())


def test_the_relay_process_serves_the_fuzzed_document(fuzzed_relay: ReferenceRelayProcess) -> None:
    served = httpx.get(f"{fuzzed_relay.base_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == _openapi_document()


# Status classes seen per dialect, checked last: fuzzing that only ever met 401s or 400s would prove little.
SEEN: dict[str, Counter[str]] = defaultdict(Counter)


def _fuzz(case: schemathesis.Case, relay: ReferenceRelayProcess, dialect: str) -> None:
    # No checks= argument: schemathesis runs all of its checks.
    response = case.call_and_validate(base_url=relay.base_url, headers=AUTH_HEADERS[dialect], timeout=10)
    SEEN[dialect][f"{response.status_code // 100}xx"] += 1


@relay_api.include(path_regex=r"^/phonerelay/").parametrize()
@FUZZ_SETTINGS
def test_phonerelay_api(case: schemathesis.Case, fuzzed_relay: ReferenceRelayProcess) -> None:
    _fuzz(case, fuzzed_relay, "phonerelay")


@relay_api.include(path_regex=r"^/relaysms/").exclude(path_regex=r"/api-key/regenerate$").parametrize()
@FUZZ_SETTINGS
def test_relaysms_api(case: schemathesis.Case, fuzzed_relay: ReferenceRelayProcess) -> None:
    _fuzz(case, fuzzed_relay, "relaysms")


@relay_api.include(path_regex=r"^/coop/").parametrize()
@FUZZ_SETTINGS
def test_coop_api(case: schemathesis.Case, fuzzed_relay: ReferenceRelayProcess) -> None:
    _fuzz(case, fuzzed_relay, "coop")


@relay_api.include(path_regex=r"^/smsgate/").parametrize()
@FUZZ_SETTINGS
def test_smsgate_api(case: schemathesis.Case, fuzzed_relay: ReferenceRelayProcess) -> None:
    _fuzz(case, fuzzed_relay, "smsgate")


def test_every_dialect_was_fuzzed_with_accepted_and_refused_requests() -> None:
    for dialect in AUTH_HEADERS:
        assert SEEN[dialect]["2xx"] > 0 and SEEN[dialect]["4xx"] > 0, dict(SEEN)
    print({d: dict(c) for d, c in SEEN.items()})
