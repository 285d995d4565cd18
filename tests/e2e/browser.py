"""Debian's Chromium driven by Playwright for Python; nothing downloads a browser.

Every request the page makes to anything but 127.0.0.1 is aborted and recorded (the V2 UI asks
for an analytics configuration from a third-party host even with server analytics off).
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
_LOCAL = re.compile(r"^(https?://127\.0\.0\.1[:/]|data:|blob:|about:)")


VIEWPORT = {"width": 1366, "height": 768}  # a common laptop screen


@dataclass
class Recorder:
    """Numbered screenshots (what the analyst sees, one screen): ``folder``/NN-step.png.

    ``numbers`` may be shared by several pages so one journey reads in order across tests."""

    page: Any
    folder: Path
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    saved: list[Path] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def shot(self, step: str) -> Path:
        path = self.folder / f"{next(self.numbers):02d}-{step}.png"
        self.page.screenshot(path=str(path))
        self.saved.append(path)
        return path


@contextmanager
def recorded_page(
    playwright: Any, folder: Path, numbers: Iterator[int] | None = None
) -> Iterator[Recorder]:
    """Debian Chromium with a fresh profile, one page that can only reach 127.0.0.1, and a
    recorder of numbered screenshots in ``folder`` (emptied first unless ``numbers`` continues
    an earlier page's numbering)."""
    folder.mkdir(parents=True, exist_ok=True)
    if numbers is None:
        for old in folder.glob("*.png"):
            old.unlink()
    profile = tempfile.mkdtemp(prefix="unblock-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
        timeout=60_000,
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(20_000)
    rec = Recorder(page, folder) if numbers is None else Recorder(page, folder, numbers)

    def route(r: Any) -> None:
        if _LOCAL.match(r.request.url):
            r.continue_()
        else:
            rec.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    try:
        yield rec
    except BaseException:
        # Whatever the page showed when the test failed is the most useful picture of all.
        with suppress(Exception):
            rec.shot("failure")
        raise
    finally:
        with open(folder / "blocked-requests.txt", "a") as blocked:
            blocked.write("".join(f"{u}\n" for u in sorted(set(rec.blocked))))
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
