"""A Prefect notification block that alerts through a message relay (SMS, WhatsApp, Telegram, ...)."""

from __future__ import annotations

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import Field, HttpUrl

from prefect_blocks.credentials import DOCUMENTATION_URL, RelayCredentials
from relay_integrations.errors import RelayError
from relay_integrations.models import OutboundMessage, SendReceipt

# Channels whose messages carry a subject of their own; elsewhere the subject heads the text.
_CHANNELS_WITH_SUBJECT = frozenset({"email"})


class RelayNotification(NotificationBlock):
    """
    Block that sends Prefect notifications as messages through a relay, so automations can alert
    by SMS, WhatsApp, Telegram, email or push.

    A failed send always raises ``NotificationError`` whose ``log`` is the relay's answer, so an
    automation records why the alert did not go out.

    Args:
        credentials: The relay to send through.
        to: Recipient addresses (phone numbers, @usernames, emails); one message per recipient.
        channel: The channel to send on (sms, wa, tg, email, notify, ...).
        sender: Sender number or name; the credentials' default when empty.

    Examples:
        Send a notification:
        ```python
        from prefect_blocks import RelayNotification
        relay_notification_block = RelayNotification.load("BLOCK_NAME")
        relay_notification_block.notify("Nightly load finished", subject="ETL")
        ```
    """

    # The UI describes an automation's action as "Send a <type name, lower case> notification":
    # "Relay Message" reads "Send a relay message notification". The slug keeps saved blocks.
    _block_type_name = "Relay Message"
    _block_type_slug = "relay-notification"
    _documentation_url = HttpUrl(DOCUMENTATION_URL)
    _description = "Send Prefect notifications as SMS/WhatsApp/Telegram/email messages through a message relay."

    credentials: RelayCredentials = Field(
        default=...,
        description="The relay to send through.",
    )
    to: list[str] = Field(
        default=...,
        min_length=1,
        title="Recipients",
        description="Recipient addresses (phone numbers, @usernames, emails); one message is sent to each.",
        examples=[["+15551234567"]],
    )
    channel: str = Field(
        default="sms",
        title="Channel",
        description="The channel to send on: sms, wa, tg, email, notify, ... (as the relay names them).",
    )
    sender: str | None = Field(
        default=None,
        title="Sender",
        description="Sender number or name; the credentials' default sender when empty.",
    )

    def _messages(self, body: str, subject: str | None) -> list[OutboundMessage]:
        text = body
        if subject and self.channel not in _CHANNELS_WITH_SUBJECT:
            text = f"{subject}\n{body}"
        return [
            OutboundMessage.model_validate({
                "to": address, "text": text, "channel": self.channel, "subject": subject, "title": subject,
                "from": self.sender, "source": "prefect",
            })
            for address in self.to
        ]

    @staticmethod
    def _failure(address: str, exc: RelayError) -> str:
        # The relay's own answer (status, code, message, body) -- never the credentials.
        answer = f"sending to {address} failed: {exc}"
        if exc.body:
            answer += f"; relay answered: {exc.body}"
        return answer

    async def anotify(self, body: str, subject: str | None = None) -> None:
        """Send ``body`` (headed by ``subject``) to every recipient.

        :param body: the notification's text.
        :param subject: its subject; the email subject, or the first line elsewhere.
        :raises NotificationError: the relay refused or could not be reached for at least one recipient
            (after trying them all); ``log`` holds the relay's answers.
        """
        receipts: list[SendReceipt] = []
        failures: list[str] = []
        async with self.credentials.get_async_client() as client:
            for message in self._messages(body, subject):
                try:
                    receipts.append(await client.send(message))
                except RelayError as exc:
                    failures.append(self._failure(str(message.to), exc))
        self._finish(receipts, failures)

    @async_dispatch(anotify)
    def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        """Send ``body`` (headed by ``subject``) to every recipient.

        :param body: the notification's text.
        :param subject: its subject; the email subject, or the first line elsewhere.
        :raises NotificationError: the relay refused or could not be reached for at least one recipient
            (after trying them all); ``log`` holds the relay's answers.
        """
        receipts: list[SendReceipt] = []
        failures: list[str] = []
        with self.credentials.get_client() as client:
            for message in self._messages(body, subject):
                try:
                    receipts.append(client.send(message))
                except RelayError as exc:
                    failures.append(self._failure(str(message.to), exc))
        self._finish(receipts, failures)

    def _finish(self, receipts: list[SendReceipt], failures: list[str]) -> None:
        # Every recipient gets its chance before a failure is raised: one bad address must not
        # keep the alert from the others.
        for receipt in receipts:
            self.logger.info("Relay notification %s accepted (%s)", receipt.message_id, receipt.state.value)
        if failures:
            raise NotificationError(log="\n".join(failures))
