"""Security suites: quick approval polling; the shared fixtures live in tests/conftest.py."""

from __future__ import annotations

import os

os.environ["UNBLOCK_APPROVAL_POLL_SECONDS"] = "1"
os.environ.setdefault("UNBLOCK_TASK_RETRIES", "3")
