"""The console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against a real ``legato server`` with real
workers. A machine without them fails these tests, saying what to install: they are not
skipped.

``LEGATO_SCREENSHOTS=DIR`` saves a screenshot of each page a test names into ``DIR``
(``docs/img`` holds the ones the README shows).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import API_APP, Server, new_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
APPS = (
    API_APP,
    "examples.course_purchase.app:app",
    "tests.acceptance.waiting_app:app",
    "tests.console.console_app:app",
)
"""What the site's workers serve: runs that fail until fixed, the course purchase, a
fraud review by a person (a human task with a form), and a subscriber that fails until
fixed (dead letters to redrive)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with auth on, and a worker of each of ``APPS``."""
    started, stop = new_server(tmp_path_factory, "console")
    try:
        for app in APPS:
            started.start_worker(app)
        yield started
    finally:
        stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium, 1280x900."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    assert not missing, (
        f"the console tests need {', '.join(missing)}: apt-get install chromium chromium-driver"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, name: str) -> None:
    """Save the page as ``$LEGATO_SCREENSHOTS/console-NAME.png`` when asked to."""
    directory = os.environ.get("LEGATO_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"console-{name}.png"))  # type: ignore[attr-defined]
