"""Schemathesis against the webhook receiver, with every check it has, against a receiver process.

The document is the receiver's own ``GET /openapi.json`` (:mod:`relay_integrations.webhooks.openapi`),
loaded eagerly so that pytest lists one test per operation; a first test checks the running process
serves exactly that document. Every operation gets generated requests, schema-valid and invalid ones.
``GET /events`` is called with the receiver's API key (``ignored_auth`` checks that it is needed);
webhook deliveries carry no valid signature (the fuzzer cannot sign), so valid ones are refused with
401, which the document declares through its security schemes. Zero failures expected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import schemathesis.specs.openapi.checks
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from relay_integrations.process import WebhookReceiverProcess
from relay_integrations.signing import derive_relaysms_url_token
from relay_integrations.webhooks.openapi import openapi_document

pytestmark = pytest.mark.e2e

API_KEY = "fuzz-inbox-key-3e9a"
SECRET = "fuzz-master-secret"
ALL_CHECKS = CHECKS.get_all()
FUZZ_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
SEEN: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzzed_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiverProcess]:
    tmp: Path = tmp_path_factory.mktemp("fuzzed-receiver")
    with WebhookReceiverProcess(db_path=tmp / "webhooks.db", secrets=[SECRET], api_key=API_KEY,
                                log_path=tmp / "receiver.log", extra_args=["--log-level", "warning"]) as proc:
        yield proc


receiver_api = schemathesis.openapi.from_dict(openapi_document())


def test_the_receiver_process_serves_the_fuzzed_document(fuzzed_receiver: WebhookReceiverProcess) -> None:
    served = httpx.get(f"{fuzzed_receiver.base_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == openapi_document()


@receiver_api.parametrize()
@FUZZ_SETTINGS
def test_receiver_api(case: schemathesis.Case, fuzzed_receiver: WebhookReceiverProcess) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"} if case.path == "/events" else None
    response = case.call_and_validate(base_url=fuzzed_receiver.base_url, headers=headers, checks=ALL_CHECKS,
                                      timeout=10)
    SEEN[f"{response.status_code // 100}xx"] += 1


@receiver_api.include(path_regex=r"^/webhooks/relaysms/").parametrize()
@FUZZ_SETTINGS
def test_relaysms_secret_url_with_the_real_token(case: schemathesis.Case,
                                                  fuzzed_receiver: WebhookReceiverProcess) -> None:
    # With the right token every generated body reaches parsing, bounds and the store: never a 5xx.
    case.path_parameters = {"token": derive_relaysms_url_token(SECRET)}
    response = case.call_and_validate(base_url=fuzzed_receiver.base_url, checks=ALL_CHECKS, timeout=10)
    SEEN[f"secret-url {response.status_code // 100}xx"] += 1


def test_fuzzing_met_accepted_and_refused_requests() -> None:
    assert SEEN["2xx"] > 0 and SEEN["4xx"] > 0, dict(SEEN)
    print(dict(SEEN))
