"""The email notifier: an HTML summary with a plain-text alternative, an inline
chart and the XLSX/CSV reports attached, sent through ``[smtp]``."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

from rollcall import hookimpl
from rollcall.config import Config
from rollcall.plugins.notifiers import render, summary_variables
from rollcall.types import OutgoingMessage

log = logging.getLogger(__name__)
CHART_CID = "attendance-chart@rollcall"
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def from_address(config: Config) -> str:
    smtp = config.smtp
    if smtp.from_address:
        return smtp.from_address
    if "@" in smtp.username:
        return smtp.username
    return f"rollcall@{smtp.host or 'localhost'}"


def build_email(message: OutgoingMessage) -> EmailMessage:
    """The MIME message: multipart/mixed( alternative(text, related(html, chart)), files )."""
    summary = message.summary
    lang = summary.language
    variables = summary_variables(summary, chart_cid=CHART_CID if message.chart else "")
    sender = from_address(message.config)
    msg = EmailMessage()
    msg["Subject"] = " ".join(render(lang, "subject.txt.j2", **variables).split())
    msg["From"] = sender
    msg["To"] = message.target
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{message.message_id_seed}@{sender.rpartition('@')[2] or 'rollcall'}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render(lang, "email.txt.j2", **variables) + "\n")
    msg.add_alternative(render(lang, "email.html.j2", **variables), subtype="html")
    if message.chart is not None:
        html_part = msg.get_payload()[1]
        html_part.add_related(
            message.chart.read_bytes(),
            maintype="image",
            subtype="png",
            cid=f"<{CHART_CID}>",
            filename=message.chart.name,
            disposition="inline",
        )
    stem = f"attendance-{summary.course_id}-meeting-{summary.meeting_id}"
    for path in message.attachments:
        if path.suffix == ".xlsx":
            maintype, subtype = XLSX_TYPE
        elif path.suffix == ".csv":
            maintype, subtype = "text", "csv"
        else:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=stem + path.suffix
        )
    return msg


class EmailNotifier:
    """Sends ``email`` messages with smtplib (STARTTLS, implicit TLS or plain)."""

    name = "notify_email"

    def __init__(self, ssl_context: Callable[[], ssl.SSLContext] | None = None) -> None:
        self._ssl_context = ssl_context or ssl.create_default_context

    def send(self, config: Config, msg: EmailMessage) -> None:
        smtp = config.smtp
        recipients = [addr for _, addr in getaddresses([msg["To"]]) if addr]
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_s, context=self._ssl_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=self._ssl_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password.get_secret_value())
            refused = client.send_message(msg, from_addr=msg["From"], to_addrs=recipients)
        if refused:
            log.warning(
                "some recipients were refused by the mail server",
                extra={"refused": sorted(refused)},
            )

    @hookimpl
    def rollcall_send_notification(self, message: OutgoingMessage) -> bool | None:
        if message.channel != "email":
            return None
        self.send(message.config, build_email(message))
        return True
