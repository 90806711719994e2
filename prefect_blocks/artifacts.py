"""Prefect artifacts for campaigns: a progress bar while sending, a report table and a summary after.

Artifact keys are derived from the campaign id (``<key>-progress``, ``<key>-report``,
``<key>-summary``, ``<key>-validation-errors``), so every run of a campaign adds a version to the
same artifacts in the UI.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from relay_integrations.campaign import CampaignProgress

_KEY_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Report columns shown in the table artifact, in this order (the idempotency key is noise there).
REPORT_COLUMNS = ("row", "address", "state", "message_id", "segments", "error", "reason", "not_before")
# Seconds between two progress artifact updates, so a fast campaign does not flood the API.
PROGRESS_UPDATE_INTERVAL = 0.5
MAX_LISTED_PROBLEMS = 20


def artifact_key(campaign_id: str, override: str | None = None) -> str:
    """The artifact key prefix for a campaign: ``override`` checked, or the id made a valid key.

    :raises ValueError: ``override`` is not lowercase letters, digits and dashes.
    """
    if override is not None:
        if not _KEY_PATTERN.match(override):
            raise ValueError(f"artifact_key {override!r}: use lowercase letters, digits and dashes only")
        return override
    slug = re.sub(r"[^a-z0-9]+", "-", campaign_id.lower()).strip("-")[:50].strip("-")
    return f"campaign-{slug}" if slug else "campaign"


def _describe(progress: CampaignProgress, name: str, dry_run: bool = False) -> str:
    # ``name`` is the campaign id the user gave; ``progress.campaign_id`` may carry the flow run's id.
    if progress.phase == "validating":
        return f"Campaign {name}: validating, {progress.processed} row(s) read"
    if dry_run:
        return (f"Campaign {name}: dry run, {progress.processed} row(s) checked, nothing sent "
                f"(invalid {progress.invalid}, suppressed {progress.suppressed}, duplicate {progress.duplicate})")
    done = f"{progress.processed}/{progress.total or 0}"
    counts = f"accepted {progress.accepted}, already sent {progress.already_sent}, failed {progress.failed}"
    verb = "sent" if progress.phase == "done" else "sending"
    return f"Campaign {name}: {verb} {done} ({counts})"


def _percent(progress: CampaignProgress) -> float:
    if progress.phase == "done":
        return 100.0
    if progress.phase == "validating" or progress.fraction is None:
        return 0.0
    return round(progress.fraction * 100.0, 1)


class CampaignProgressArtifact:
    """A progress artifact fed by a campaign's ``progress`` callback.

    The callback (:meth:`record`) only remembers the latest snapshot, because it also runs in a
    worker thread during validation; :meth:`apush` updates the artifact from the event loop.

    :param key: the artifact key.
    :param campaign_name: the campaign id the user gave, shown in the description.
    """

    def __init__(self, key: str, campaign_name: str) -> None:
        self.key = key
        self.campaign_name = campaign_name
        self._dry_run = False
        self.artifact_id: UUID | None = None
        self._latest: CampaignProgress | None = None
        self._pushed: tuple[float, str] | None = None
        self._last_push = 0.0
        self._lock = threading.Lock()
        self.updates = 0

    # --- callback ------------------------------------------------------------------------------
    def record(self, progress: CampaignProgress) -> None:
        """The campaign's progress callback: remember the latest snapshot."""
        with self._lock:
            self._latest = CampaignProgress(**vars(progress))

    def _pending(self) -> tuple[float, str] | None:
        with self._lock:
            if self._latest is None:
                return None
            state = (_percent(self._latest), _describe(self._latest, self.campaign_name, self._dry_run))
        if state == self._pushed:
            return None
        return state

    def _mark_finished(self, dry_run: bool) -> None:
        # A dry run ends after validation without a "done" snapshot from the campaign: the bar
        # still ends at 100 %, saying nothing was sent.
        with self._lock:
            self._dry_run = dry_run
            if self._latest is None:
                self._latest = CampaignProgress(self.campaign_name, "done", 0)
            elif self._latest.phase != "done":
                self._latest = CampaignProgress(**{**vars(self._latest), "phase": "done"})

    # --- pushing ---------------------------------------------------------------------------------
    async def acreate(self, description: str) -> None:
        self.artifact_id = await acreate_progress_artifact(progress=0.0, key=self.key, description=description)

    async def apush(self) -> None:
        state = self._pending()
        if state is None or self.artifact_id is None:
            return
        await aupdate_progress_artifact(self.artifact_id, progress=state[0], description=state[1])
        self._pushed, self._last_push = state, time.monotonic()
        self.updates += 1

    async def afinish(self, dry_run: bool = False) -> None:
        """The campaign returned: show 100 % and the final counts."""
        self._mark_finished(dry_run)
        await self.apush()


# --- report artifacts --------------------------------------------------------------------------


def report_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The report rows as table artifact rows (fixed columns, JSON-able values)."""
    return [{column: row.get(column) for column in REPORT_COLUMNS} for row in rows]


def report_markdown(report: Mapping[str, Any]) -> str:
    """A short markdown summary of a campaign report dict (``CampaignReport.to_dict``)."""
    counts: Mapping[str, int] = report.get("counts", {})
    title = f"# Campaign `{report.get('campaign_id')}`" + (" (dry run)" if report.get("dry_run") else "")
    lines = [
        title,
        "",
        f"Relay API: **{report.get('dialect') or '-'}**, sending strategy: **{report.get('strategy') or '-'}**.",
        "",
        "| outcome | rows |",
        "|---|---:|",
    ]
    lines += [f"| {name.replace('_', ' ')} | {value} |" for name, value in counts.items() if name != "segments"]
    lines += ["", f"SMS segments sent: **{counts.get('segments', 0)}**.", ""]
    if counts.get("suppressed"):
        lines += [f"**{counts['suppressed']}** recipient(s) were not messaged because they are on the suppression "
                  "list (opted out, or listed by hand); each row's `reason` says since when and why.", ""]
    if report.get("next_run_at"):
        lines += [f"**{counts.get('deferred', 0)}** row(s) are deferred (outside the send window, or scheduled "
                  f"later): the first may go at **{report['next_run_at']}**. Run the campaign again then; "
                  "rows already sent are not sent again.", ""]
    problems = [r for r in report.get("rows", []) if r.get("state") in ("failed", "invalid")]
    if problems:
        lines += ["## Problems", "", "| row | address | state | error |", "|---:|---|---|---|"]
        for row in problems[:MAX_LISTED_PROBLEMS]:
            error = str(row.get("error") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {row.get('row')} | {row.get('address') or ''} | {row.get('state')} | {error} |")
        failed_total = counts.get("failed", 0) + counts.get("invalid", 0)
        if failed_total > MAX_LISTED_PROBLEMS:
            lines += ["", f"... and {failed_total - MAX_LISTED_PROBLEMS} more in the report table."]
        lines.append("")
    if report.get("rows_omitted"):
        lines += [f"The report table shows {len(report.get('rows', []))} of the rows "
                  f"({report['rows_omitted']} omitted; problems are always shown first).", ""]
    return "\n".join(lines)


def validation_table(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"row": e.get("row"), "field": e.get("field"), "message": e.get("message")} for e in errors]


async def acreate_report_artifacts(key: str, report: Mapping[str, Any]) -> None:
    """The ``<key>-report`` table and ``<key>-summary`` markdown artifacts of a report dict."""
    await acreate_table_artifact(table=report_table(report.get("rows", [])), key=f"{key}-report",
                                 description=f"Campaign {report.get('campaign_id')}: one row per recipient")
    await acreate_markdown_artifact(markdown=report_markdown(report), key=f"{key}-summary",
                                    description=f"Campaign {report.get('campaign_id')}: summary")


async def acreate_validation_artifact(key: str, campaign_id: str, errors: Sequence[Mapping[str, Any]]) -> None:
    """The ``<key>-validation-errors`` table: every listed row-level error."""
    await acreate_table_artifact(table=validation_table(errors), key=f"{key}-validation-errors",
                                 description=f"Campaign {campaign_id}: rows refused before sending "
                                             "(nothing was sent)")
