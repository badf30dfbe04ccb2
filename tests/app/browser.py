"""Headless Chromium for the App's browser tests (Debian's chromium + chromium-driver).

Every wait is an explicit one on a DOM condition, bounded by ``WAIT`` seconds; selenium is
blocking, so trio tests call these helpers through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

#: Longest wait for one DOM condition, seconds.
WAIT = 15.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Where screenshots go when ``PROVD_SCREENSHOTS`` names a directory (docs/app to refresh
#: the README's pictures); otherwise they are not taken.
SHOTS = os.environ.get("PROVD_SCREENSHOTS", "")


def chromium(width: int = 1200, height: int = 860) -> tuple[webdriver.Chrome, str]:
    """A fresh headless Chromium with its own profile directory (removed by ``quit``)."""
    binary = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert binary and driver, "install Debian's chromium and chromium-driver (see .ci/run)"
    profile = tempfile.mkdtemp(prefix="provd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(WAIT)
    browser.set_script_timeout(WAIT)
    return browser, profile


def quit_browser(browser: webdriver.Chrome, profile: str) -> None:
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(browser, condition, timeout: float = WAIT):
    return WebDriverWait(browser, timeout).until(condition)


def css(browser, selector: str, timeout: float = WAIT):
    return wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, selector)), timeout)


def text_in(browser, selector: str, text: str, timeout: float = WAIT):
    return wait(
        browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text), timeout
    )


def shot(browser, name: str, *, frame: bool = True) -> None:
    """Save a screenshot of the whole window as ``<SHOTS>/<name>.png`` (if enabled)."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    if frame:
        browser.switch_to.default_content()
    browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))
    if frame:
        browser.switch_to.frame(browser.find_element(By.ID, "app"))
