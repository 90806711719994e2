"""How a ``relay`` process starts and exits (``relay_integrations._startup``), and that calling the CLI
from a program changes nothing in that program.

The command runs as a subprocess against the reference relay; an ``atexit`` hook registered before it
reports what the process looked like at its end.
"""

from __future__ import annotations

import gc
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from campaign_relay_helpers import stored_messages

from relay_integrations import RelayClient
from relay_integrations._client_base import default_ssl_context, plain_http_context
from relay_integrations._startup import YOUNG_GENERATION_THRESHOLD
from relay_integrations.cli import main
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

PROBE = """
import atexit, gc, json, sys
probe = sys.argv[1]
def report():
    with open(probe, "w") as fh:
        json.dump({"httpx": "httpx" in sys.modules, "httpx_cli": sys.modules.get("httpx._main", 0) is None,
                   "rich": "rich" in sys.modules, "frozen": gc.get_freeze_count(), "gc": gc.isenabled(),
                   "threshold": gc.get_threshold()}, fh)
atexit.register(report)
sys.argv = ["relay", *sys.argv[2:]]
from relay_integrations.cli import run
run()
"""


def test_relay_command_sends_and_exits_without_httpx_cli_and_with_imports_frozen(tmp_path: Path) -> None:
    with ReferenceRelayProcess(api_key="k") as relay:
        people = tmp_path / "people.csv"
        people.write_text("phone,name\n+14155550101,Ada\n+14155550102,Grace\n")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
               "RELAY_BASE_URL": relay.url("relaysms"), "RELAY_DIALECT": "relaysms", "RELAY_API_KEY": "k",
               "RELAY_SENDER": "+1987654321"}
        probe = tmp_path / "probe.json"
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(probe), "campaign", "--template", "Hi {{ name }}", "--recipients",
             str(people), "--campaign-id", "startup", "--ledger", str(tmp_path / "l.sqlite"), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"]["accepted"] == 2
        assert len(stored_messages(relay, "relaysms")) == 2
    seen = json.loads(probe.read_text())
    assert seen["httpx"] and seen["httpx_cli"], seen  # httpx was used, its command line never imported
    assert not seen["rich"], seen
    assert seen["frozen"] > 10_000, seen  # the imports' objects, left out of every later collection
    assert seen["gc"], seen  # the work itself runs with the collector on
    assert seen["threshold"] == [YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:]], seen


def test_calling_the_cli_from_a_program_leaves_its_collector_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("phone,name\n+14155550101,Ada\n")
    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    code = main(["campaign", "--template", "Hi {{ name }}", "--recipients", str(people), "--campaign-id", "lib",
                 "--ledger", str(tmp_path / "l.sqlite"), "--dry-run", "--no-progress",
                 "--base-url", "http://127.0.0.1:9/relaysms", "--dialect", "relaysms", "--api-key", "k",
                 "--sender", "+1987654321"])
    assert code == 0, capsys.readouterr().err
    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == threshold
    assert gc.isenabled()
    assert "httpx._main" not in sys.modules or sys.modules["httpx._main"] is not None


def test_plain_http_relay_gets_a_context_that_trusts_nothing_https_the_verifying_one() -> None:
    with RelayClient(base_url="http://127.0.0.1:5110/relaysms", dialect="relaysms", api_key="k",
                     sender="+1987654321") as plain:
        context = plain._verify
    assert context is plain_http_context()
    assert isinstance(context, ssl.SSLContext)
    # Still verifying: were TLS ever reached, no certificate would be accepted.
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    with RelayClient(base_url="https://relay.example/relaysms", dialect="relaysms", api_key="k",
                     sender="+1987654321") as secure:
        assert secure._verify is default_ssl_context()
    assert default_ssl_context().cert_store_stats()["x509_ca"] > 0
    with RelayClient(base_url="http://127.0.0.1:5110/relaysms", dialect="relaysms", api_key="k",
                     sender="+1987654321", verify=False) as unverified:
        assert unverified._verify is False
