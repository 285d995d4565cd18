"""Run a command to its end from a test, its text output kept for the assertions."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_command(
    args: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``args`` run once, stdout and stderr captured as text. The exit code is the caller's to
    judge: some tests expect a command to fail."""
    return subprocess.run(
        list(args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
