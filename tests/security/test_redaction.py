"""The logging redaction filter (playbook.redaction), the safety net under secret hygiene.

Records are captured by a real handler on the root logger, as Prefect's console handler is; the
full-run scan of console output and the API log table is in test_secret_leaks.py.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from playbook import redaction


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        redaction.install()
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _secret() -> str:
    return "Pw-" + secrets.token_urlsafe(18)


@pytest.mark.parametrize(
    "logger_name", ["", "m365.transport", "prefect.task_runs", "prefect.flow_runs.unblock", "x.y"]
)
def test_registered_secret_is_redacted_from_messages_args_and_tracebacks(captured, logger_name):
    secret = _secret()
    redaction.register_secret(SecretStr(secret))
    log = logging.getLogger(logger_name)
    log.warning("plain %s", secret)
    log.warning("in the message itself: " + secret)
    log.warning("dict args %(pw)s", {"pw": secret})
    try:
        raise RuntimeError(f"boom with {secret}")
    except RuntimeError:
        log.exception("failed")
    out = captured.getvalue()
    assert secret not in out
    assert out.count(redaction.REDACTED) >= 4
    redaction.forget_secret(secret)


def test_secret_split_across_args_is_still_redacted_after_formatting(captured):
    secret = _secret()
    redaction.register_secret(secret)
    logging.getLogger("m365").error("%s%s", secret[:5], secret[5:])
    assert secret not in captured.getvalue()
    redaction.forget_secret(secret)


def test_unregistered_values_and_short_values_are_left_alone(captured):
    redaction.register_secret("abc")  # too short to redact safely
    logging.getLogger("m365").info("abc and rob@contoso.com")
    assert "abc and rob@contoso.com" in captured.getvalue()


def test_forgotten_secret_is_no_longer_redacted(captured):
    secret = _secret()
    redaction.register_secret(secret)
    redaction.forget_secret(secret)
    logging.getLogger("m365").info("value %s", secret)
    assert secret in captured.getvalue()


def test_malformed_format_record_passes_the_filter_unchanged():
    redaction.register_secret(_secret())
    record = logging.LogRecord("m365", logging.INFO, __file__, 1, "%s %s", ("only-one",), None)
    assert redaction.RedactionFilter().filter(record) is True
    assert record.msg == "%s %s"
