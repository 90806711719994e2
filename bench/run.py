"""``make bench``: run every benchmark script and print one table of figures next to their baselines.

Each script runs in its own process (``.venvs/airflow/bin/python``, where the core, the reference
relay and Airflow live), one after the other so they do not compete for the two cores, and measures
its baselines in the same run as its figures. This script only reads their output and puts it
together:

=================================  ==============================================================
script                             figures
=================================  ==============================================================
bench/campaign_throughput.py       Campaign.send per dialect vs a plain httpx loop and a tuned
                                   async sender; render+validate rate next to the hand-written
                                   loop in the same process; dry run rate and peak memory at
                                   100,000 and 1,000,000 recipients
bench/dryrun_memory.py             the hand-written render+validate loop (baseline of the above)
bench/server_throughput.py         reference relay accepted messages/s, single and batch/bulk,
                                   vs a bare FastAPI echo and raw SQLite
bench/webhooks_throughput.py       webhook receiver verified events/s vs an echo endpoint
bench/airflow_mapped.py            one RelayCampaignOperator vs mapped HttpOperator tasks
bench/concurrency_latency.py       ``relay campaign`` (CLI start-up included) vs a sequential httpx
                                   loop on loopback and through a latency proxy (10 and 50 ms each
                                   way), with the concurrency the campaign chose
bench/respect_cost.py              a campaign's dry run honouring a 10,000-entry suppression list,
                                   and with quiet hours (zones from each number), vs the same dry
                                   run without either
bench/tracking_rounds.py           campaign tracking: relay requests in a poll round for 100,000
                                   recipients vs per-message GETs; XCom, trigger kwargs and wait
                                   result sizes for 1,000,000 recipients vs the id-list XCom
=================================  ==============================================================

The table (figure, value, baseline, ratio) goes to stdout, and with the machine description to
``bench/RESULTS.md`` (``--no-write`` to leave it alone). Each script's full output is kept in a
temporary directory whose path is printed. The default sizes keep the whole run near 10 minutes on
an idle 2-core machine; ``--full`` uses the sizes of the issue for every figure (10,000 recipients
per dialect, 100,000 rows for the validation rate; about twice as long).

    .venvs/airflow/bin/python bench/run.py [--full] [--only campaign airflow ...] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
PACKAGES = ("relay-integrations", "httpx", "pydantic", "jinja2", "phonenumbers", "fastapi", "starlette", "uvicorn",
            "apache-airflow", "apache-airflow-task-sdk", "apache-airflow-providers-http")


@dataclass
class Figure:
    figure: str
    value: float
    unit: str
    baseline_label: str
    baseline: float

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


@dataclass
class Step:
    name: str
    script: str
    args: list[str]
    full_args: list[str]
    smoke_args: list[str]
    timeout: float


STEPS = [
    Step("campaign", "campaign_throughput.py",
         ["--n", "2000", "--validate-n", "20000", "--dry-run-sizes", "100000", "1000000"],
         ["--n", "10000", "--validate-n", "100000", "--dry-run-sizes", "100000", "1000000"],
         ["--n", "100", "--validate-n", "1000", "--dry-run-sizes", "1000", "5000"], 3600),
    Step("dryrun-baseline", "dryrun_memory.py", ["--n", "100000"], ["--n", "100000"], ["--n", "2000"], 900),
    Step("server", "server_throughput.py", ["--repeat", "3", "--singles", "1000", "--batches", "20"], [],
         ["--repeat", "1", "--singles", "100", "--batches", "1"], 1800),
    Step("webhooks", "webhooks_throughput.py", ["--events", "3000", "--rounds", "3"],
         ["--events", "10000", "--rounds", "3"], ["--events", "300"], 1200),
    Step("airflow", "airflow_mapped.py", ["--recipients", "500"], ["--recipients", "500"], ["--recipients", "10"],
         3600),
    Step("latency", "concurrency_latency.py", [], [], ["--quick", "--delays", "0", "0.01"], 1800),
    Step("respect", "respect_cost.py", [], ["--n", "100000"], ["--n", "2000", "--listed", "100", "--repeats", "1"],
         900),
    Step("ledger", "ledger_scaling.py", ["--sizes", "10000", "100000"], ["--sizes", "10000", "1000000"],
         ["--sizes", "1000", "5000"], 900),
    Step("tracking", "tracking_rounds.py", ["--n", "100000"], ["--n", "100000"],
         ["--n", "2000", "--size-recipients", "20000", "--baseline-sample", "100"], 3600),
]


# --- reading the scripts' output -------------------------------------------------------------
def table_rows(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the markdown table whose first header cell is ``first_header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and cells[0] == first_header:
            rows = []
            for body in lines[i + 2:]:
                if not body.lstrip().startswith("|"):
                    break
                values = [c.strip() for c in body.strip().strip("|").split("|")]
                rows.append(dict(zip(cells, values, strict=False)))
            return rows
    raise ValueError(f"no table with a {first_header!r} column")


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("x").strip())


def bench_result(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line[len("BENCH_RESULT "):])
            return result
    raise ValueError("no BENCH_RESULT line")


def campaign_figures(out: str, baseline_out: str | None) -> list[Figure]:
    figures = []
    for row in table_rows(out, "dialect"):
        label = f"campaign {row['dialect']} ({row['campaign path']}), msg/s"
        value = number(row["Campaign.send"])
        figures.append(Figure(label, value, "msg/s", "plain httpx loop", number(row["(a) httpx loop"])))
        figures.append(Figure("", value, "msg/s", "raw async httpx, 8 in flight", number(row["(b) async x8"])))
    naive = bench_result(baseline_out) if baseline_out else None
    match = re.search(r"## Render \+ validate \((\d+) rows[^\n]*\n\s*\n?([\d,.]+) rows/s", out)
    same_run = re.search(r"hand-written jinja2 \+ phonenumbers loop, same run: ([\d,.]+) rows/s", out)
    if match and same_run:  # both measured alternately in one process: the fair comparison
        figures.append(Figure(f"Campaign.validate, {int(match.group(1)):,} rows, rows/s (median)",
                              number(match.group(2)), "rows/s", "hand-written jinja2+phonenumbers loop, same run",
                              number(same_run.group(1))))
    elif match:
        figures.append(Figure(f"Campaign.validate, {int(match.group(1)):,} rows, rows/s", number(match.group(2)),
                              "rows/s", "hand-written jinja2+phonenumbers loop" if naive else "",
                              naive["rows_per_s"] if naive else 0.0))
    dry = {int(number(r["recipients"])): r for r in table_rows(out, "recipients")}
    if dry:
        largest = max(dry)
        smallest = min(dry)
        row = dry[largest]
        figures.append(Figure(f"dry run {largest:,} recipients, rows/s", number(row["rows/s"]), "rows/s",
                              "hand-written loop" if naive else "", naive["rows_per_s"] if naive else 0.0))
        figures.append(Figure(f"dry run {largest:,} recipients, peak memory MiB, validation workers included"
                              " (lower is better)",
                              number(row["peak memory MiB"]), "MiB", f"same dry run, {smallest:,} recipients",
                              number(dry[smallest]["peak memory MiB"])))
        if naive:
            figures.append(Figure("", number(row["peak memory MiB"]), "MiB",
                                  f"hand-written loop keeping {naive['n']:,} messages", naive["peak_rss_mib"]))
    return figures


def server_figures(out: str) -> list[Figure]:
    figures = []
    last_what, last_rate = "", 0.0
    for row in table_rows(out, "what"):
        what = row["what"]
        if what:
            last_what, last_rate = what, number(row["msgs/s"]) if row["msgs/s"] else 0.0
        if not row.get("baseline/s") or not last_rate:
            continue
        figures.append(Figure(f"relay {last_what}, msg/s" if what else "", last_rate, "msg/s", row["baseline"],
                              number(row["baseline/s"])))
    return figures


def latency_figures(out: str) -> list[Figure]:
    """``relay campaign`` (the CLI, start-up included) against a sequential loop, per route."""
    figures = []
    for row in table_rows(out, "figure"):
        if not row.get("baseline value"):
            continue  # the relay's own ceiling: a reference, not a comparison
        value, unit = row["value"].split()[:2]  # "7,638 msg/s", or "452 ms" for a dry run's time
        figures.append(Figure(row["figure"], number(value), unit, row["baseline"],
                              number(row["baseline value"].split()[0])))
    return figures


def webhook_figures(out: str) -> list[Figure]:
    rows = {r["variant"]: r for r in table_rows(out, "variant")}
    echo = number(rows["echo"]["events/s"])
    figures = []
    if "receiver" in rows:
        verified = number(rows["receiver"]["events/s"])
        figures.append(Figure("webhook receiver, verified + stored events/s", verified, "events/s",
                              "echo endpoint (HTTP floor), same client", echo))
        if "receiver/no-verify" in rows:
            figures.append(Figure("", verified, "events/s", "receiver without verification",
                                  number(rows["receiver/no-verify"]["events/s"])))
    return figures


def airflow_figures(out: str) -> list[Figure]:
    result = bench_result(out)
    n = result["recipients"]
    return [Figure(f"Airflow dag.test(), {n} recipients: one RelayCampaignOperator, msg/s",
                   result["operator"]["messages_per_s"], "msg/s", f"{n} mapped HttpOperator tasks",
                   result["mapped"]["messages_per_s"])]


def respect_figures(out: str) -> list[Figure]:
    rows = {r["run"]: number(r["rows/s"]) for r in table_rows(out, "run")}
    n = re.search(r"Dry run of (\d+) recipients", out)
    size = f"{int(n.group(1)):,} recipients" if n else "recipients"
    return [Figure(f"dry run, {size}, honouring a suppression list, rows/s", rows["opt-outs"], "rows/s",
                   "same dry run, opt-outs off", rows["baseline"]),
            Figure(f"dry run, {size}, quiet hours (zones from numbers), rows/s", rows["quiet hours"], "rows/s",
                   "same dry run, no send window", rows["baseline"])]


def ledger_figures(out: str) -> list[Figure]:
    rows = {int(number(r["rows"])): r for r in table_rows(out, "rows")}
    small, large = min(rows), max(rows)
    return [Figure(f"campaign ledger writes (claim, mark, record), {large:,}-row campaign, rows/s",
                   number(rows[large]["rows/s"]), "rows/s", f"same, {small:,}-row campaign",
                   number(rows[small]["rows/s"]))]


def tracking_figures(out: str) -> list[Figure]:
    result = bench_result(out)
    n = result["n"]
    figures = []
    for dialect, r in result["dialects"].items():
        worst = max(r["fresh"]["requests"], r["all_news"]["requests"])
        figures.append(Figure(f"tracking {dialect}, {n:,} recipients: requests in the worst poll round", worst,
                              "req", "one GET per message id (old trigger)", r["baseline"]["requests"]))
    s = result["sizes"]
    m = s["recipients"]
    figures.append(Figure(f"campaign XCom / send_campaign result, {m:,} recipients", s["xcom_bytes"] / 1024, "KiB",
                          "old XCom with every message id", s["old_xcom_bytes"] / 1024))
    figures.append(Figure(f"status trigger kwargs, {m:,} recipients", s["trigger_kwargs_bytes"] / 1024, "KiB",
                          "old XCom with every message id", s["old_xcom_bytes"] / 1024))
    figures.append(Figure(f"status sensor / wait task result, {m:,} recipients", s["wait_result_bytes"] / 1024,
                          "KiB", "old XCom with every message id", s["old_xcom_bytes"] / 1024))
    return figures


# --- machine -------------------------------------------------------------------------------------
def machine_description(python: str) -> list[tuple[str, str]]:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() or str(os.cpu_count())
    code = ("import importlib.metadata as m, json, platform, sqlite3\n"
            f"names = {list(PACKAGES)!r}\n"
            "v = {}\n"
            "for n in names:\n"
            "    try: v[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: v[n] = 'not installed'\n"
            "print(json.dumps({'python': platform.python_version(), 'sqlite': sqlite3.sqlite_version, 'v': v}))")
    info = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        ("nproc", nproc), ("CPU", cpu), ("memory", mem), ("OS", platform.platform()),
        ("python", info["python"]), ("SQLite", info["sqlite"]),
        ("packages", ", ".join(f"{k} {v}" for k, v in info["v"].items())),
    ]


def loop_seconds(python: str) -> float:
    """Seconds a pure-Python loop of 10 million additions takes (best of 3): this machine's single-core
    speed, which on a shared VM changes from day to day. Absolute figures move with it; ratios to a
    same-run baseline much less."""
    code = ("import time\nbest = 1e9\nfor _ in range(3):\n    t = time.perf_counter(); s = 0\n"
            "    for i in range(10_000_000): s += i\n    best = min(best, time.perf_counter() - t)\nprint(best)")
    return float(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def byte_compile(python: str) -> None:
    """Compile the package's modules to bytecode, as installing a wheel does.

    ``relay`` figures include the command's start-up. A checkout run with PYTHONDONTWRITEBYTECODE set
    (as some CI and sandboxes do) would otherwise compile every module of ours from source at each
    start, a cost installed users never pay."""
    subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "relay_integrations")], check=True)


# --- running -------------------------------------------------------------------------------------
def run_step(step: Step, python: str, outdir: Path, sizes: str) -> tuple[str, float, int]:
    args = {"full": step.full_args, "smoke": step.smoke_args}.get(sizes, step.args)
    log = outdir / f"{step.name}.txt"
    command = [python, str(BENCH / step.script), *args]
    print(f"bench: {step.name}: {' '.join([Path(python).name, 'bench/' + step.script, *args])}", file=sys.stderr,
          flush=True)
    started = time.monotonic()
    with log.open("w") as f:
        try:
            proc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=step.timeout,
                                  check=False)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
            f.write(f"\nbench/run.py: timed out after {step.timeout:.0f} s\n")
    seconds = time.monotonic() - started
    print(f"bench: {step.name}: exit {code} after {seconds:.0f} s (output: {log})", file=sys.stderr, flush=True)
    return log.read_text(errors="replace"), seconds, code


def render_table(figures: list[Figure]) -> list[str]:
    rows = [["figure", "value", "baseline (same run)", "baseline value", "ratio"]]
    for f in figures:
        rows.append([f.figure, f"{f.value:,.1f} {f.unit}", f.baseline_label or "-",
                     f"{f.baseline:,.1f} {f.unit}" if f.baseline else "-",
                     f"{f.ratio:.2f}x" if f.baseline else "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows[1:]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the issue's sizes for every figure (about 2x longer)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, to check the scripts run (figures meaningless; RESULTS.md is not written)")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in STEPS], help="run only these steps")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--from-dir", type=Path, metavar="DIR",
                        help="run nothing: read the outputs an earlier run kept in DIR and print (and write) them")
    args = parser.parse_args()

    venv_python = ROOT / ".venvs" / "airflow" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    sizes = "smoke" if args.smoke else "full" if args.full else "default"
    outputs: dict[str, str] = {}
    problems: list[str] = []
    if args.from_dir:
        outdir = args.from_dir
        meta = json.loads((outdir / "run.json").read_text())
        for step in STEPS:
            if (outdir / f"{step.name}.txt").exists():
                outputs[step.name] = (outdir / f"{step.name}.txt").read_text(errors="replace")
        problems = meta["problems"]
    else:
        outdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
        byte_compile(python)
        meta = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "load_start": os.getloadavg()[0], "sizes": sizes, "durations": {},
                "loop_start": loop_seconds(python)}
        started = time.monotonic()
        for step in STEPS:
            if args.only and step.name not in args.only:
                continue
            out, seconds, code = run_step(step, python, outdir, sizes)
            outputs[step.name] = out
            meta["durations"][step.name] = round(seconds)
            if code != 0:
                problems.append(f"{step.script} exited with {code}; see {outdir / (step.name + '.txt')}")
        meta.update(total=time.monotonic() - started, load_end=os.getloadavg()[0], problems=problems,
                    loop_end=loop_seconds(python))
        (outdir / "run.json").write_text(json.dumps(meta))

    readers: dict[str, Callable[[], list[Figure]]] = {
        "campaign": lambda: campaign_figures(outputs["campaign"], outputs.get("dryrun-baseline")),
        "server": lambda: server_figures(outputs["server"]),
        "webhooks": lambda: webhook_figures(outputs["webhooks"]),
        "latency": lambda: latency_figures(outputs["latency"]),
        "airflow": lambda: airflow_figures(outputs["airflow"]),
        "respect": lambda: respect_figures(outputs["respect"]),
        "ledger": lambda: ledger_figures(outputs["ledger"]),
        "tracking": lambda: tracking_figures(outputs["tracking"]),
    }
    figures: list[Figure] = []
    for name, read in readers.items():
        if name not in outputs:
            continue
        try:
            figures += read()
        except (ValueError, KeyError) as exc:
            problems.append(f"could not read the {name} figures ({exc}); see {outdir / (name + '.txt')}")
    table = render_table(figures)
    machine = machine_description(python)
    durations = ", ".join(f"{k} {v} s" for k, v in meta["durations"].items())
    summary = (f"{meta['started']}; total {meta['total'] / 60:.1f} min ({durations}); load average"
               f" {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end; sizes: {meta['sizes']}")
    if "loop_start" in meta:
        summary += (f"; single-core speed: 10 million pure-Python additions in {meta['loop_start']:.2f} s at start,"
                    f" {meta['loop_end']:.2f} s at end (best of 3; lower is faster)")
    print()
    print("\n".join(table))
    print(f"\n{summary}")
    for key, value in machine:
        print(f"{key}: {value}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"full outputs: {outdir}")

    if not args.no_write and not args.only and meta["sizes"] != "smoke":
        write_results(table, machine, summary, problems, outputs)
    return 1 if problems else 0


def write_results(table: list[str], machine: list[tuple[str, str]], summary: str, problems: list[str],
                  outputs: dict[str, str]) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/run.py`); every figure is next to a baseline measured in the same run,",
        "ratio = value / baseline. Throughput figures: higher is better; memory: lower is better.",
        "",
        "How to read them: `Campaign.send` figures include the validation pass over every row and the ledger",
        "writes; the plain loop and the async sender post prepared bodies and check nothing. The dry-run",
        "memory figures are the peak of a fresh process with its validation worker (its resident set plus the",
        "worker's private pages, sampled every 20 ms) and, for the hand-written loop, its `VmHWM`; the campaign",
        "spools rows to a temporary SQLite file, the hand-written loop keeps its messages in a list. Past",
        "2,000 rows, rows are also validated on a forked worker process. The Airflow figure is end-to-end",
        "`dag.test()` time per DAG (after a warm-up DAG), messages = recipients. The package is byte-compiled",
        "before the run, as pip does when it installs a wheel, so `relay` commands start as they do for users.",
        "The webhook figures are sent by a minimal HTTP/1.1 client (8 keep-alive connections, prepared",
        "requests), so the server sets the pace; httpx's client would cap the echo floor itself near 1,100/s here.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine],
        f"- run: {summary}",
        "",
        "## Figures",
        "",
        *table,
        "",
    ]
    if problems:
        lines += ["## Problems in this run", "", *[f"- {p}" for p in problems], ""]
    lines += ["## Each script's own tables", ""]
    for name, out in outputs.items():
        lines += [f"### {name}", ""]
        previous_was_table = False
        for line in out.splitlines():
            if not (line.startswith(("|", "#", "machine:", "speed-up", "ratio", "(import", "hand-written",
                                     "Reference relay", "webhook receiver")) or line.endswith(" rows/s")):
                continue
            is_table = line.startswith("|")
            if lines[-1] and (is_table != previous_was_table or line.startswith("#")):
                lines.append("")  # markdown needs a blank line between a table and the text around it
            lines.append("#### " + line.lstrip("# ") if line.startswith("#") else line)
            previous_was_table = is_table
        lines.append("")
    RESULTS.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
