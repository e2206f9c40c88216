"""Structured logging: plain text for people, one JSON object per line for machines.

Context goes in ``extra={...}`` (job_id, meeting_id, course_id...). Secrets are
never passed to the logger in the first place.
"""

from __future__ import annotations

import json
import logging
import sys

from rollcall.printable import printable

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """One line per record: time, level, message, ``key=value`` extras.

    Messages and extra values often carry untrusted text (a request path, a Zoom
    topic, a file name): their control characters are escaped
    (:func:`rollcall.printable.printable`), so a newline or an ESC sequence in them
    can neither forge a log line nor rewrite the terminal. Only a traceback spans lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = printable(record.getMessage())
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {message}"
        extras = " ".join(f"{printable(k)}={printable(v)}" for k, v in _extras(record).items())
        text = f"{base} {extras}" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("insightface", "onnxruntime", "matplotlib", "PIL", "asyncio", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
