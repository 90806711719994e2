"""Airflow: how long RelayMessageStatusTrigger takes on its first run in a fresh process vs later runs.

Issue #13 saw the first status trigger on a real triggerer take 9.1 s where the same 47 status calls
take 0.19 s (later triggers 0.28 s). This measures, in one fresh interpreter, against a reference relay
process holding 47 delivered phonerelay messages: importing the trigger module (what the triggerer
does on first use), then the trigger's ``run()`` to its event, three times (first = cold: client and
SSL context construction, connection lookup, first dialect use), next to the 47 raw status calls made
with one plain httpx client as the baseline.

    PYTHONPATH=$PWD .venvs/airflow/bin/python bench/trigger_first_poll.py

The last line of output is ``BENCH_RESULT {json}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from relay_integrations.process import ReferenceRelayProcess

MESSAGES = 47
KEY = "bench-trigger-key-1c2d"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-trigger-"))
    relay = ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=KEY, delivery_latency=0.05)
    with relay:
        base = relay.url("phonerelay")
        headers = {"Authorization": f"Bearer {KEY}"}
        ids = [httpx.post(f"{base}/api/v1/messages", headers=headers, timeout=10, json={
            "phone_id": "phone_main", "to": f"+1415555{1000 + i:04d}", "text": "bench", "channel": "sms",
        }).json()["message_id"] for i in range(MESSAGES)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait by condition: every message delivered
            states = [httpx.get(f"{base}/api/v1/messages/{m}", headers=headers, timeout=10).json()["message"]["status"]
                      for m in ids]
            if all(s == "sent" or s == "delivered" for s in states):
                break
            time.sleep(0.2)
        os.environ["AIRFLOW_CONN_RELAY_DEFAULT"] = json.dumps({
            "conn_type": "relay", "host": base, "password": KEY, "extra": {"dialect": "phonerelay"}})

        started = time.perf_counter()
        with httpx.Client(headers=headers, timeout=10) as client:
            for m in ids:
                client.get(f"{base}/api/v1/messages/{m}").raise_for_status()
        raw = time.perf_counter() - started

        started = time.perf_counter()
        from airflow_provider.triggers.relay import RelayMessageStatusTrigger
        import_s = time.perf_counter() - started

        async def one_run() -> tuple[float, str]:
            trigger = RelayMessageStatusTrigger(message_ids=ids, target_state="sent", poll_interval=0.1)
            began = time.perf_counter()
            async for event in trigger.run():
                return time.perf_counter() - began, event.payload["status"]
            raise RuntimeError("no event")

        runs = [asyncio.run(one_run()) for _ in range(3)]
    result = {"messages": MESSAGES, "raw_status_calls_s": round(raw, 3), "import_trigger_module_s": round(import_s, 3),
              "trigger_runs_s": [round(s, 3) for s, _ in runs], "statuses": [st for _, st in runs]}
    print(f"47 raw status calls: {raw:.3f} s; import trigger module: {import_s:.3f} s; "
          f"trigger run() first/second/third: {', '.join(f'{s:.3f}' for s, _ in runs)} s")
    print("BENCH_RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
