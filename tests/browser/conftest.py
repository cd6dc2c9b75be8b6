"""Headless Chromium for the browser tests: Debian's `chromium` + `chromium-driver`, driven
through selenium from the `test` extra. Both binaries are named explicitly, so selenium never
tries to download a browser or a driver."""

from __future__ import annotations

import os
import shutil

import pytest

# The closed network here refuses Chromium's background connections; these flags stop it trying.
HEADLESS_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def missing(reason: str):
    """Skip, except in CI, where .ci/run installs the browser and a missing one is a broken set-up."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


def start_chromium(profile_dir, window_size: str, browser_log: bool = False):
    """A headless Chromium with a fresh profile; the caller quits it."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing('selenium is not installed: pip install -e ".[test]"')
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not binary or not chromedriver:
        missing("Debian's chromium and chromium-driver are not installed "
                "(apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in HEADLESS_FLAGS + [f"--window-size={window_size}", f"--user-data-dir={profile_dir}"]:
        options.add_argument(flag)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


@pytest.fixture(scope="session")
def chromium():
    """The start_chromium function, for the browser tests' own module-scoped driver fixtures."""
    return start_chromium
