"""Campaign-level tracking: relay requests per poll round, and the size of what Airflow and Prefect store.

Part 1, requests per round (target: at most 1,100 for 100,000 recipients). For relaysms, coop and
smsgate, a reference relay process (``relay serve``) takes N recipients through its batch endpoints
(relaysms ``/sms/batch`` x1000, coop bulk jobs x1000, smsgate messages of 100 recipients: a
same-text campaign), their ids go into a campaign ledger the way a campaign records them, and the
core waiter (:class:`relay_integrations.tracking.CampaignWaiter`) polls. Every HTTP request the
client makes is counted by its transport. Reported per dialect:

* ``fresh``: the first round, while the relay is still delivering (most batches have no news);
* ``all news``: a round from scratch once the relay has finished every message, so every batch or
  list has news and is read in full (the worst case);
* ``done``: the round after that (nothing left open: no request).

next to the baseline: the per-message GET round the status trigger made before (one GET per message
id). Its request count is the number of ids; its time is measured over ``--baseline-sample`` GETs and
scaled to N (a full 100,000-GET round takes minutes and says nothing more).

Part 2, serialized sizes for ``--size-recipients`` (default 1,000,000) accepted rows: the campaign
operator's XCom (= ``send_campaign``'s result, both :func:`relay_integrations.tracking.campaign_result`),
the status trigger's kwargs, and the sensor's / wait task's result (``TrackingStatus.as_dict`` over a
ledger holding that many entries), next to the old XCom (the same report plus every message id).

    .venvs/airflow/bin/python bench/tracking_rounds.py [--n 100000] [--size-recipients 1000000]

The last line of output is ``BENCH_RESULT {json}`` for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay_integrations.campaign.campaign_store import Accepted, CampaignStore
from relay_integrations.client import RelayClient
from relay_integrations.models import OutboundMessage
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.tracking import CampaignRef, CampaignWaiter, RelayIdentity, campaign_result

API_KEY = "bench-tracking-key"
SENDER = "+1987654321"
CHUNK = {"relaysms": 1000, "coop": 1000, "smsgate": 100}
TARGET = 1100
STAMP = datetime(2026, 1, 1, tzinfo=timezone.utc)


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return super().handle_request(request)


def number(i: int) -> str:
    n = f"+1415{3000000 + i:07d}"
    return n if not n.endswith("0000") else f"+1416{3000000 + i:07d}"


def client_for(relay: ReferenceRelayProcess, dialect: str, transport: httpx.BaseTransport | None = None) -> RelayClient:
    return RelayClient(relay.url(dialect), dialect, API_KEY, login=relay.login, sender=SENDER, timeout=60,
                       transport=transport)


def fill(relay: ReferenceRelayProcess, dialect: str, n: int, ledger_path: Path, campaign_id: str) -> tuple[int, float]:
    """Send ``n`` recipients in chunks; record the accepted ids in the ledger. Returns (messages, seconds)."""
    started = time.perf_counter()
    messages = 0
    with client_for(relay, dialect) as client, CampaignStore.open(ledger_path) as store:
        identity = RelayIdentity.from_client(client)
        for start in range(0, n, CHUNK[dialect]):
            rows = list(range(start, min(n, start + CHUNK[dialect])))
            if dialect == "smsgate":
                to = [number(i) for i in rows]
                receipt = client.send(OutboundMessage(to=to if len(to) > 1 else to[0], text="Your order has shipped."))
                ids: list[tuple[str | None, str | None]] = [(receipt.message_id, None)] * len(rows)
                messages += 1
            else:
                batch = client.send_batch([OutboundMessage(to=number(i), text=f"Hi {i}, shipped.") for i in rows])
                if dialect == "coop":  # a bulk job answers with its id; its results name the messages
                    listed = {int(r["index"]): r["messageId"] for r in client.bulk_results(batch.batch_id)["results"]}
                    ids = [(listed[k], batch.batch_id) for k in range(len(rows))]
                else:
                    ids = [(r.message_id, batch.batch_id) for r in batch.results]
                messages += len(rows)
            record(store, identity, campaign_id,
                   [(i, number(i), mid, bid) for i, (mid, bid) in zip(rows, ids, strict=True)])
    return messages, time.perf_counter() - started


def record(store: CampaignStore, identity: RelayIdentity, campaign_id: str,
           rows: list[tuple[int, str, str | None, str | None]]) -> None:
    """Record accepted rows the way a campaign does: claim them, then mark them accepted."""
    store.claim(identity, campaign_id, [(f"{campaign_id}-{i}", address, i) for i, address, _, _ in rows])
    store.record_accepted(identity, campaign_id, [Accepted(f"{campaign_id}-{i}", message_id=mid, batch_id=bid,
                                                           address=address, row=i) for i, address, mid, bid in rows])


def relay_finished(relay: ReferenceRelayProcess, dialect: str) -> bool:
    """Whether the relay moved every outbound message of ``dialect`` to a final state (its /_sim view)."""
    after = 0
    while True:
        answer = httpx.get(f"{relay.base_url}/_sim/messages", params={"dialect": dialect, "direction": "outbound",
                                                                      "after": after, "limit": 50_000},
                           headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)
        answer.raise_for_status()
        body = answer.json()
        if any(m["state"] not in ("delivered", "failed") for m in body["messages"]):
            return False
        if not body["messages"]:
            return True
        after = body["next_after"]


def one_round(relay: ReferenceRelayProcess, dialect: str, ledger_path: Path, campaign_id: str) -> dict[str, Any]:
    transport = CountingTransport()
    store = CampaignStore.open(ledger_path)
    with client_for(relay, dialect, transport) as client:
        waiter = CampaignWaiter(CampaignRef(campaign_id, str(ledger_path)), store,
                                relay=RelayIdentity.from_client(client))
        open_before = waiter.status().waiting
        started = time.perf_counter()
        status = waiter.poll(client)
        seconds = time.perf_counter() - started
    store.close()
    return {"open": open_before, "requests": transport.count, "budget": status.budget, "seconds": seconds,
            "counts": status.counts, "done": status.done}


def reset_states(ledger_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(ledger_path)
    with conn:
        conn.execute("UPDATE relay_campaign_entries SET state = NULL, state_at = NULL")
    conn.close()


def baseline_round(relay: ReferenceRelayProcess, dialect: str, ledger_path: Path, campaign_id: str,
                   sample: int) -> dict[str, Any]:
    """The old trigger's round: one GET per message id. Timed over ``sample`` ids, scaled to all of them."""
    transport = CountingTransport()
    with client_for(relay, dialect, transport) as client, CampaignStore.open(ledger_path) as store:
        accepted = store.iter_accepted(RelayIdentity.from_client(client), campaign_id)
        ids = list(dict.fromkeys(e.message_id for e in accepted if e.message_id))
        started = time.perf_counter()
        for message_id in ids[:sample]:
            client.get_status(message_id)
        seconds = time.perf_counter() - started
    measured = min(sample, len(ids))
    return {"requests": len(ids), "sampled": measured, "sample_requests": transport.count,
            "seconds_scaled": seconds / measured * len(ids) if measured else 0.0}


def sizes(n: int, workdir: Path) -> dict[str, Any]:
    """Serialized sizes for ``n`` accepted rows (JSON, as Airflow's XCom and trigger table store them)."""
    from airflow_provider.triggers.relay import RelayMessageStatusTrigger
    from relay_integrations.campaign.report import ACCEPTED, CampaignReport
    from relay_integrations.campaign.store import PlannedRow, ScratchStore

    campaign_id = "bench-size"
    ledger_path = workdir / "size-ledger.sqlite"
    scratch = ScratchStore()
    relay = RelayIdentity("relaysms", "https://relay.example.com/relaysms", "key:0123456789abcdef")
    with CampaignStore.open(ledger_path) as store:
        chunk: list[tuple[int, str, str | None, str | None]] = []
        for i in range(n):
            mid = f"msg_{i:012d}"
            scratch.add(PlannedRow(row=i + 1, address=number(i), state=ACCEPTED, segments=1,
                                   idempotency_key=f"{campaign_id}-{i}", message_id=mid, batch_id=f"batch_{i // 1000}"))
            chunk.append((i, number(i), mid, f"batch_{i // 1000}"))
            if len(chunk) == 10_000:
                record(store, relay, campaign_id, chunk)
                chunk = []
        record(store, relay, campaign_id, chunk)
    scratch.flush()
    scratch.finish_planning()
    report = CampaignReport.from_store(scratch, campaign_id, dialect="relaysms", strategy="batch",
                                       ledger_path=str(ledger_path))
    xcom = campaign_result(report, relay, max_rows=100)
    old = {**report.to_dict(max_rows=100), "message_ids": report.message_ids}
    report.close()
    trigger_kwargs = RelayMessageStatusTrigger(campaign=xcom, relay_conn_id="relay_default").serialize()[1]
    with CampaignStore.open(ledger_path) as store:
        # Half delivered, a few failed, the rest still open: a sample of each kind in the result.
        store.record_states(relay, campaign_id, {f"msg_{i:012d}": ("delivered", STAMP)
                                                 for i in range(0, n, 2)})
        store.record_states(relay, campaign_id, {f"msg_{i:012d}": ("failed", STAMP)
                                                 for i in range(1, n, 1000)})
        status = CampaignWaiter(CampaignRef(campaign_id, str(ledger_path), relay), store).status()
    wait_result = status.as_dict()
    return {
        "recipients": n,
        "xcom_bytes": len(json.dumps(xcom)),
        "trigger_kwargs_bytes": len(json.dumps(trigger_kwargs)),
        "wait_result_bytes": len(json.dumps(wait_result)),
        "old_xcom_bytes": len(json.dumps(old)),
        "counts": status.counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="recipients per dialect (default 100000)")
    parser.add_argument("--dialects", nargs="*", default=["relaysms", "coop", "smsgate"])
    parser.add_argument("--baseline-sample", type=int, default=2000, help="per-message GETs actually timed")
    parser.add_argument("--size-recipients", type=int, default=1_000_000)
    parser.add_argument("--smsgate-recipients", type=int, default=100,
                        help="recipients per smsgate message (100: a same-text campaign; 1: personalised texts)")
    parser.add_argument("--finish-timeout", type=float, default=900.0,
                        help="seconds to wait for the relay to finish delivering before the all-news round")
    args = parser.parse_args()

    CHUNK["smsgate"] = args.smsgate_recipients
    results: dict[str, Any] = {"n": args.n, "target": TARGET, "dialects": {}}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        work = Path(tmp)
        # Enough relaysms balance for every message (0.015 USD a segment by default).
        with ReferenceRelayProcess(db_path=work / "relay.db", api_key=API_KEY, delivery_latency=5.0,
                                   log_path=work / "relay.log",
                                   extra_args=["--balance", str(args.n * len(args.dialects))]) as relay:
            for dialect in args.dialects:
                campaign_id = f"bench-{dialect}"
                ledger_path = work / f"{dialect}.sqlite"
                messages, fill_seconds = fill(relay, dialect, args.n, ledger_path, campaign_id)
                fresh = one_round(relay, dialect, ledger_path, campaign_id)
                deadline = time.monotonic() + args.finish_timeout
                while not relay_finished(relay, dialect) and time.monotonic() < deadline:
                    time.sleep(2)
                reset_states(ledger_path)  # from scratch: every open message has news
                news = one_round(relay, dialect, ledger_path, campaign_id)
                done = one_round(relay, dialect, ledger_path, campaign_id)
                baseline = baseline_round(relay, dialect, ledger_path, campaign_id, args.baseline_sample)
                results["dialects"][dialect] = {"messages": messages, "fill_seconds": fill_seconds, "fresh": fresh,
                                                "all_news": news, "done": done, "baseline": baseline}
                print(f"{dialect}: {args.n:,} recipients in {messages:,} relay messages; round requests: fresh "
                      f"{fresh['requests']}, all news {news['requests']} ({news['seconds']:.1f} s, counts "
                      f"{news['counts']}), done {done['requests']}; budget {news['budget']}; per-message GET "
                      f"baseline {baseline['requests']:,} requests (~{baseline['seconds_scaled']:.0f} s, scaled from "
                      f"{baseline['sampled']})", flush=True)
        results["sizes"] = sizes(args.size_recipients, work)
    s = results["sizes"]
    print(f"{s['recipients']:,} recipients: operator XCom / send_campaign result {s['xcom_bytes']:,} B, trigger "
          f"kwargs {s['trigger_kwargs_bytes']:,} B, sensor / wait task result {s['wait_result_bytes']:,} B; "
          f"old XCom with every id {s['old_xcom_bytes']:,} B")
    print("BENCH_RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
