"""Safety net: redact every registered secret value from every log record.

Secrets are registered the moment they are generated (or read back from a Secret block), and
the filter sits on the *handlers* of the root, ``prefect``, ``prefect.flow_runs`` and
``prefect.task_runs`` loggers, so it covers console output and the logs shipped to the API,
whatever logger a record came from. It also rewrites formatted tracebacks.
"""

from __future__ import annotations

import logging
import threading

from pydantic import SecretStr

REDACTED = "***REDACTED***"
_LOGGER_NAMES = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.unblock")
_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``REDACTED``."""
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactionFilter(logging.Filter):
    """Rewrites the message (and any traceback) of a record that contains a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed %-format: keep the record as it is
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactionFilter()


def install() -> None:
    """Attach the filter to the relevant loggers and their handlers (idempotent)."""
    for name in _LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def register_secret(secret: SecretStr | str) -> None:
    """Redact this value from now on, and make sure the filter is installed."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)
    install()


def forget_secret(secret: SecretStr | str) -> None:
    """Stop redacting a value (after it has been destroyed)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    with _lock:
        _secrets.discard(value)
