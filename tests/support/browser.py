"""The system's Chromium, as Playwright drives it here (LIBS.md: Playwright
cannot download its own browsers on these machines, so it is given
Debian's ``chromium``), with what keeps it quiet and on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = ["ARGS", "chromium_browser", "find_chromium"]

#: No sandbox (root in a container), no GPU, and nothing that calls home.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> tuple[str | None, str]:
    """Chromium's path, installing Debian's package when it is missing and
    this user may (root, apt-get); else None and why not."""
    found = shutil.which("chromium")
    if found:
        return found, ""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None, "chromium is not installed, and apt-get cannot install it here (not root)"
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    found = shutil.which("chromium")
    if found:
        return found, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"chromium is not installed, and `apt-get install chromium` failed: {tail[0]}"


@asynccontextmanager
async def chromium_browser(path: str | None = None) -> AsyncIterator[Browser]:
    """Playwright driving the system's Chromium (``path``, else found as
    :func:`find_chromium` finds it; the test is skipped when there is none)."""
    from playwright.async_api import async_playwright

    if path is None:
        path, why = find_chromium()
        if path is None:
            pytest.skip(why)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=ARGS)
        yield launched
        await launched.close()
