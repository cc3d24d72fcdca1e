"""Debian's Chromium for the browser tests, driven by Playwright for Python.

``playwright install`` cannot download browsers here: the tests use
``/usr/bin/chromium`` (``make test`` installs Debian's package when it is missing),
headless, without a sandbox (the tests run as root) and without the background
networking that would try to reach Google's servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the calling test module when Chromium is missing (fail under CI instead)."""
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium (a Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
