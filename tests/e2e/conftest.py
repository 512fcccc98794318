"""What the browser tests share: one headless Chromium per module (Debian's, tests/support.py's launch_chromium)."""
import pytest
from playwright.sync_api import sync_playwright

from tests.support import launch_chromium


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()
