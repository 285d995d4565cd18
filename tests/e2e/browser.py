"""Debian's Chromium driven by Playwright for Python; nothing downloads a browser.

Every request the page makes to anything but 127.0.0.1 is aborted and recorded (the V2 UI asks
for an analytics configuration from a third-party host even with server analytics off).
"""

from __future__ import annotations

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


@dataclass
class Recorder:
    """Numbered screenshots for one test: artifacts/screenshots/<test>/NN-step.png."""

    page: Any
    folder: Path
    count: int = 0
    saved: list[Path] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def shot(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        return path


@contextmanager
def recorded_page(playwright: Any, folder: Path) -> Iterator[Recorder]:
    """Debian Chromium with a fresh profile, one page that can only reach 127.0.0.1, and a
    recorder of numbered screenshots in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    profile = tempfile.mkdtemp(prefix="unblock-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
        timeout=60_000,
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(20_000)
    rec = Recorder(page, folder)

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
        (folder / "blocked-requests.txt").write_text(
            "".join(f"{u}\n" for u in sorted(set(rec.blocked)))
        )
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
