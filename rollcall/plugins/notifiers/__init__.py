"""Built-in notifier plugins: email (SMTP) and chat (Slack-compatible and Teams webhooks).

Both implement ``rollcall_send_notification`` and render their texts from the
Jinja2 templates in ``templates/<language>/`` (``[reports] language`` or the
course's ``language``). A translation is a new folder with the same file
names; a file missing from it falls back to the English one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_LANGUAGE = "en"


def _pct(value: float) -> str:
    return f"{float(value):.1f}"


@jinja2.pass_context
def _chat_escape(context: Any, text: Any) -> str:
    """Escape user text (names, titles) for the chat flavour being rendered."""
    text = str(text)
    if context.get("flavor") == "slack":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\*_[]`":
        text = text.replace(ch, "\\" + ch)
    return text


@lru_cache(maxsize=16)
def environment(language: str) -> jinja2.Environment:
    """The Jinja2 environment of one language (English files fill the gaps)."""
    folders = [TEMPLATES / language] if language != DEFAULT_LANGUAGE else []
    folders.append(TEMPLATES / DEFAULT_LANGUAGE)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders if f.is_dir()]),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["pct"] = _pct
    env.filters["esc"] = _chat_escape
    return env


def render(language: str, name: str, /, **variables: Any) -> str:
    """Render ``templates/<language>/<name>`` (English if that language lacks it)."""
    return environment(language).get_template(name).render(**variables)


def summary_variables(summary: Any, **extra: Any) -> dict[str, Any]:
    """The template variables of a :class:`rollcall.notify.summary.MeetingSummary`."""
    return {"s": summary, **summary.to_dict(), **extra}
