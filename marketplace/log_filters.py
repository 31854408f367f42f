"""Filters on other libraries' loggers that keep secrets out of the logs.

Attached to the loggers themselves (``install``, from the app's ``ready``), not through
``LOGGING``: configuring uvicorn's or Celery's loggers there would replace the handlers
those servers give them. A filter on a logger sees the records logged on it by name.
"""
import logging
import re

# ``?key=ak_…`` (the WebSocket's way to send a key, browsers cannot set its headers).
_KEY_IN_QUERY = re.compile(r"(?i)([?&](?:key|api_key)=)[^&\s\"']+")
# A key wherever else a client put it (another parameter's name, the path): its secret part
# (``marketplace.services.api_keys``: ``ak_`` and a prefix, then the secret). The prefix,
# which names the key on its owner's keys page, stays.
# (No word boundary before it: after %20 or %3A, as uvicorn logs a query, there is none.)
_KEY_SHAPED = re.compile(r"(ak_[a-z0-9]{10}_)[A-Za-z0-9_-]{16,}")


def _redacted(value):
    if not isinstance(value, str):
        return value
    return _KEY_SHAPED.sub(r"\1[redacted]", _KEY_IN_QUERY.sub(r"\1[redacted]", value))


class RedactKeysInPaths(logging.Filter):
    """uvicorn logs each WebSocket's path with its query string ('"WebSocket /ws/requests/
    …?key=ak_…" [accepted]'): the key, in full, in the server's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


class HideTaskResults(logging.Filter):
    """Celery logs every task's return value on success ("Task execution.invoke[…]
    succeeded in …: {'result': …, 'metadata': {'stdout': …}}"): callers' results, and what
    algorithms print, secrets included. The line stays, without the value."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and "return_value" in record.args:
            record.args = {**record.args, "return_value": "(not logged)"}
        data = getattr(record, "data", None)  # the same context, for custom handlers
        if isinstance(data, dict) and "return_value" in data:
            record.data = {**data, "return_value": "(not logged)"}
        return True


def install() -> None:
    # (django.request: "Not Found: <path>" for a key sent as a path segment.)
    for name in ("uvicorn.error", "uvicorn.access", "django.request"):
        _add_once(logging.getLogger(name), RedactKeysInPaths)
    _add_once(logging.getLogger("celery.app.trace"), HideTaskResults)


def _add_once(logger: logging.Logger, kind: type) -> None:
    if not any(isinstance(existing, kind) for existing in logger.filters):
        logger.addFilter(kind())
