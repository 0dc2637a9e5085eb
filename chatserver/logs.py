"""Logging set-up: JSON lines (or plain text) with a correlation id per request/connection."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import urllib.parse
from typing import Any

import orjson

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
REDACTED = "[redacted]"
SECRET_PARAMS = frozenset(
    {"token", "access_token", "id_token", "jwt", "password", "secret", "key", "auth"}
)
SECRET_HEADERS = ("authorization", "proxy-authorization", "sec-websocket-protocol", "cookie")

# A query parameter (as printed in a request line or URL); its name is matched after
# percent-decoding, exactly as the server parses it, so ?tok%65n= is caught too.
_PARAM_RE = re.compile(r"([?&;])([^=&;\s#\"']+)=([^&;\s#\"']*)")
_HEADER_RE = re.compile(r"((?:" + "|".join(SECRET_HEADERS) + r")\s*[:=]\s*)[^\r\n]*", re.IGNORECASE)
_HEADER_PAIR_RE = re.compile(
    r"(\(b?['\"](?:" + "|".join(SECRET_HEADERS) + r")['\"],\s*)b?(['\"]).*?\2\)", re.IGNORECASE
)
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)


def _param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    if urllib.parse.unquote_plus(name).strip().lower() in SECRET_PARAMS and value:
        return f"{sep}{name}={REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with every secret it may carry blanked: secret query parameters, secret
    headers (``Authorization``, ``Sec-WebSocket-Protocol``, ``Cookie``), anything shaped
    like a JWT, and passwords in URLs."""
    text = _PARAM_RE.sub(_param, text)
    text = _HEADER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _HEADER_PAIR_RE.sub(lambda m: f"{m.group(1)}'{REDACTED}')", text)
    text = _JWT_RE.sub(REDACTED, text)
    return _URL_PASSWORD_RE.sub(lambda m: m.group(1) + REDACTED + "@", text)


class RedactSecrets(logging.Filter):
    """Blank out secrets in every record, at every level: the formatted message, string
    fields passed as ``extra`` and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        cid = correlation_id.get()
        return f"{line} [{cid}]" if cid else line


def configure(*, level: str, json_format: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if json_format else TextFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # DEBUG is the chat server's own: libraries stay at INFO (websockets, for one, would
    # log every frame, users' text included).
    root.setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("chatserver").setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access logs are per-request chatter; /metrics and probes would flood them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
