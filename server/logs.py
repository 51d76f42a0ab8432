"""The server's log lines: text for people, or JSON lines for log collectors
(``--log-format json``), each line of a call carrying the call's request id; and the
access log, one line per call (``--access-log``)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid

ACCESS = "server.access"
REQUEST_FIELDS = ("request_id", "rpc", "model", "version", "code", "duration_ms")
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII: a caller's id is kept only if it is one

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def call_id(value: str | None) -> str:
    """The call's request id: the caller's ``x-request-id`` (gRPC metadata or HTTP header)
    where it is a short printable one, otherwise a new one."""
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class _RequestId(logging.Filter):
    """Puts the current call's request id on every record logged while it runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update({k: getattr(record, k) for k in REQUEST_FIELDS if getattr(record, k, "") not in ("", None)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup(level: str, log_format: str, worker: int | None = None) -> None:
    """The root logger's one handler, on stderr."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        where = f"[worker {worker}]" if worker is not None else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s"))
    handler.addFilter(_RequestId())
    logging.basicConfig(level=level, handlers=[handler], force=True)
