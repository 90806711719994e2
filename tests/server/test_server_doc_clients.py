"""The phonerelay doc's own client examples (Java HttpClient, curl, curl --http2, Node fetch, Python
requests), run unchanged but for host and key against a real relay process.

Java's HttpClient sends ``Upgrade: h2c`` (so does ``curl --http2``); uvicorn's httptools parser
then dropped the body and the relay answered ``400 body: is required``. The relay runs in this
interpreter's environment: the Airflow venv has httptools, the Prefect venv only h11, and CI runs
this file in both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_server_helpers import sim_client

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

DOC = Path("/work/shared/relay-docs/phonerelay.md")
EXAMPLES = Path(__file__).with_name("phonerelay_doc_examples")
"""Verbatim copies of the doc's examples, for checkouts without the docs (CI); compared below."""
DOC_BASE = "http://127.0.0.1:5110"
HEADINGS = ("curl (works everywhere)", "Python (requests)", "C++ (libcurl)", "Node.js (fetch)", "Go (net/http)",
            "Java (HttpClient)", "C# (.NET HttpClient)")
FILES = {"Java (HttpClient)": "Send.java", "curl (works everywhere)": "send.sh", "Node.js (fetch)": "send.mjs",
         "Python (requests)": "send.py"}
TIMEOUT = 120


def doc_example(heading: str) -> str:
    """The example under ``heading`` in the doc's "Examples (Copy/Paste)" section, as printed."""
    if not DOC.exists():
        return (EXAMPLES / FILES[heading]).read_text()
    lines = DOC.read_text().splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] in HEADINGS), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


@pytest.mark.parametrize("heading", sorted(FILES))
def test_copies_match_the_doc(heading: str) -> None:
    if DOC.exists():
        assert (EXAMPLES / FILES[heading]).read_text() == doc_example(heading)


def for_relay(code: str, relay: ReferenceRelayProcess, client: str) -> str:
    assert DOC_BASE in code and '"..."' in code and "sms-001" in code
    return (code.replace(DOC_BASE, relay.base_url).replace('"..."', f'"{relay.api_key}"')
            .replace("sms-001", f"doc-client-{client}"))


@pytest.fixture(scope="module")
def root_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    """phonerelay at the root, so the doc's paths work verbatim."""
    tmp = tmp_path_factory.mktemp("doc-clients")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key="doc-clients-key", extra_args=["--dialect",
                               "phonerelay"], log_path=tmp / "relay.log") as relay:
        yield relay


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{cmd[0]} exited {done.returncode}: {done.stdout}\n{done.stderr}"
    return done.stdout


def assert_stored(relay: ReferenceRelayProcess, client: str) -> None:
    with sim_client(relay) as sim:
        messages = sim.get("/messages", params={"dialect": "phonerelay"}).json()["messages"]
    keys = {m["idempotency_key"]: m for m in messages}
    assert f"doc-client-{client}" in keys, sorted(k for k in keys if k)
    assert keys[f"doc-client-{client}"]["text"] == "hello"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (.ci/run installs it)"
    return path


def test_java_httpclient_example(root_relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    (tmp_path / "Send.java").write_text(for_relay(doc_example("Java (HttpClient)"), root_relay, "java"))
    run([tool("javac"), "Send.java"], tmp_path)
    out = run([tool("java"), "-cp", str(tmp_path), "Send"], tmp_path).splitlines()
    assert out[0] == "202", out
    assert json.loads(out[1])["success"] is True
    assert_stored(root_relay, "java")


@pytest.mark.parametrize("flags", [[], ["--http2"]], ids=["http1", "http2-upgrade"])
def test_curl_example(root_relay: ReferenceRelayProcess, tmp_path: Path, flags: list[str]) -> None:
    name = "curl" + "".join(f.strip("-") for f in flags)
    script = for_relay(doc_example("curl (works everywhere)"), root_relay, name)
    script = re.sub(r"^curl ", "curl " + " ".join(flags) + " ", script, flags=re.M)
    (tmp_path / "send.sh").write_text(script)
    tool("curl")
    body = json.loads(run(["bash", "send.sh"], tmp_path))
    assert body["success"] is True and body["status"] == "queued", body
    assert_stored(root_relay, name)


def test_node_fetch_example(root_relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    (tmp_path / "send.mjs").write_text(for_relay(doc_example("Node.js (fetch)"), root_relay, "node"))
    out = run([tool("node"), "send.mjs"], tmp_path)
    assert out.startswith("202 "), out
    assert_stored(root_relay, "node")


def test_python_requests_example(root_relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    (tmp_path / "send.py").write_text(for_relay(doc_example("Python (requests)"), root_relay, "python"))
    out = run([sys.executable, "send.py"], tmp_path)
    assert out.startswith("202 "), out
    assert_stored(root_relay, "python")


@pytest.mark.parametrize("argv", [
    ["serve", "--db", ":memory:", "--port", "5999"],
    ["webhooks", "serve", "--db", ":memory:", "--port", "5998", "--secret", "coop=not-a-real-secret"],
], ids=["relay", "receiver"])
def test_both_servers_run_uvicorn_with_h11(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver shares the runner; the real clients above prove what h11 changes for the relay."""
    import uvicorn

    from relay_integrations.cli import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(vars(self.config)))
    assert main(argv) == 0
    assert seen["http"] == "h11" and seen["host"] == "127.0.0.1"
