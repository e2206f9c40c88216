"""The chat notifier: the short summary to a Slack-compatible or a Microsoft
Teams incoming webhook (the URL is a secret: it is never logged)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from rollcall import hookimpl
from rollcall.plugins.notifiers import render, summary_variables
from rollcall.types import OutgoingMessage

TIMEOUT_S = 30.0


class WebhookError(Exception):
    """The webhook answered with an error; the message never contains the URL."""


def chat_text(message: OutgoingMessage, flavor: str) -> str:
    s = message.summary
    text = render(s.language, "chat.txt.j2", **summary_variables(s, flavor=flavor))
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def slack_payload(message: OutgoingMessage) -> dict[str, Any]:
    """Slack's incoming-webhook JSON (also accepted by Mattermost, Rocket.Chat...)."""
    return {"text": chat_text(message, "slack"), "unfurl_links": False, "mrkdwn": True}


def teams_payload(message: OutgoingMessage) -> dict[str, Any]:
    """An Adaptive Card message, as Teams incoming webhooks and Workflows accept."""
    s = message.summary
    lines = chat_text(message, "teams").splitlines()
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": line,
            "wrap": True,
            **({"weight": "Bolder"} if i == 0 else {}),
        }
        for i, line in enumerate(lines)
        if line.strip() and not (s.admin_url and s.admin_url in line)
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if s.admin_url:
        label = next((ln for ln in lines if s.admin_url in ln), "")
        title = label[1 : label.find("]")] if label.startswith("[") else "Open"
        card["actions"] = [{"type": "Action.OpenUrl", "title": title, "url": s.admin_url}]
    return {
        "type": "message",
        "summary": lines[0].strip("*") if lines else "",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def post_json(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_S) -> int:
    """POST ``payload``; returns the HTTP status, raises WebhookError unless 2xx."""
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "rollcall"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"webhook answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookError(f"webhook unreachable: {reason}") from None


class ChatNotifier:
    """Sends ``slack`` and ``teams`` messages."""

    name = "notify_chat"

    @hookimpl
    def rollcall_send_notification(self, message: OutgoingMessage) -> bool | None:
        if message.channel == "slack":
            payload = slack_payload(message)
        elif message.channel == "teams":
            payload = teams_payload(message)
        else:
            return None
        post_json(message.target, payload)
        return True
