"""RelayInboundStatsOperator: the relay's inbound traffic query (phonerelay)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from pydantic import ValidationError

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.retries import invalid_input, relay_errors_classified
from relay_integrations.models import InboundQuery

if TYPE_CHECKING:
    from airflow.sdk import Context


class RelayInboundStatsOperator(BaseOperator):
    """Run phonerelay's inbound traffic query and return the stats dict (summary, per channel/day/tag...).

    :param phone_id: Device to report on; defaults to the connection's. (templated)
    :param range: Time range, e.g. ``7d``. (templated)
    :param channels: Channels to include (``sms``, ``wa``, ``tg``...). (templated)
    :param event_types: ``message``, ``call``, ``missed``, ``answered``. (templated)
    :param tags: Tags to filter on. (templated)
    :param tag_mode: ``any`` or ``all``.
    :param source_contains: Substring of the source address. (templated)
    :param min_duration_sec: Shortest call to include.
    :param max_duration_sec: Longest call to include.
    :param has_response: Only events that got (or did not get) a response.
    :param sort: Sort order, e.g. ``slowest``. (templated)
    :param limit: At most this many events.
    :param relay_conn_id: The ``relay`` connection (phonerelay). (templated)
    """

    template_fields: Sequence[str] = (
        "phone_id",
        "range",
        "channels",
        "event_types",
        "tags",
        "source_contains",
        "sort",
        "relay_conn_id",
    )
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        phone_id: str | None = None,
        range: str | None = None,
        channels: list[str] | None = None,
        event_types: list[str] | None = None,
        tags: list[str] | None = None,
        tag_mode: Literal["any", "all"] | None = None,
        source_contains: str | None = None,
        min_duration_sec: int | None = None,
        max_duration_sec: int | None = None,
        has_response: bool | None = None,
        sort: str | None = None,
        limit: int | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phone_id = phone_id
        self.range = range
        self.channels = channels
        self.event_types = event_types
        self.tags = tags
        self.tag_mode = tag_mode
        self.source_contains = source_contains
        self.min_duration_sec = min_duration_sec
        self.max_duration_sec = max_duration_sec
        self.has_response = has_response
        self.sort = sort
        self.limit = limit
        self.relay_conn_id = relay_conn_id

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        values = {
            "phone_id": self.phone_id or self.hook.settings.phone_id,
            "range": self.range,
            "channels": self.channels,
            "event_types": self.event_types,
            "tags": self.tags,
            "tag_mode": self.tag_mode,
            "source_contains": self.source_contains,
            "min_duration_sec": self.min_duration_sec,
            "max_duration_sec": self.max_duration_sec,
            "has_response": self.has_response,
            "sort": self.sort,
            "limit": self.limit,
        }
        try:
            query = InboundQuery.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            raise invalid_input("inbound query", e) from None
        with self.hook.get_client() as client, relay_errors_classified("inbound stats"):
            if not client.capabilities.inbound_stats:
                raise AirflowFailException(f"{client.dialect.name} has no inbound stats query (phonerelay has)")
            stats = client.inbound_stats(query)
        result: dict[str, Any] = stats.model_dump(mode="json", exclude={"raw"})
        self.log.info("Inbound stats: %d event(s), summary %s", stats.count, stats.summary)
        return result
