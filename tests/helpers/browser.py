"""Debian's headless Chromium driven by Selenium through Debian's chromedriver (never a downloaded
browser or driver), and the steps on the page of ``tstam serve``: for the browser test and
``docs/serve_screenshot.py``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
WAIT_S = 120  # generous: the 2 CI cores are shared


def new_driver(profile: Path):
    """Headless Debian chromium through Debian's chromedriver, with a fresh profile folder."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: the browser test needs Debian's chromium and chromium-driver "
                    "(`make test` installs them as root: apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver or browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def wait_for(driver, condition, what: str, state=None):
    """Until ``condition(driver)``; on time-out ``state()`` (how things stood) and the browser's log
    say why."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition)
    except TimeoutException as e:
        raise AssertionError(f"timed out waiting for {what}; {state() if state else ''}; "
                             f"browser log: {driver.get_log('browser')}") from e


def wait_in_page(driver, condition, what: str, server_log: tuple[str, ...] | list[str] = ()):
    """Until ``condition(driver)`` on the page of ``tstam serve``; on time-out the page's state, the
    browser's log and the end of the server's log say why."""
    def state() -> str:
        page = driver.execute_script(
            "return {running, job: document.getElementById('job-name').textContent, "
            "stages: [...document.querySelectorAll('#stages li')].map(l => l.dataset.stage + ':' + l.className), "
            "result_hidden: document.getElementById('result').hidden, error: document.getElementById('error').textContent}")
        return f"page: {page}; server log:\n" + "".join(server_log[-30:])

    return wait_for(driver, condition, what, state)


def shot(driver, path: Path, width: int) -> Path:
    """A full-page screenshot at ``width`` CSS pixels."""
    driver.set_window_size(width, 1000)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    driver.save_screenshot(str(path))
    return path


def result_for(driver, name: str, server_log: list[str]) -> None:
    """Until the result of ``name`` and its pictures are shown (one check in the page, so that it
    cannot see the previous result together with the new name)."""
    wait_in_page(driver, lambda d: d.execute_script(
        "const shown = !document.getElementById('result').hidden "
        "  && document.getElementById('job-name').textContent === arguments[0];"
        "return shown && ['attention', 'animation'].every(id => { const i = document.getElementById(id); "
        "  return i.complete && i.naturalWidth > 0; });", name), f"the result of {name} and its pictures", server_log)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_in_page(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"), "the page to start")


def click_sample(driver, name: str, server_log: list[str]) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#sample-list button[data-sample="{name}"]').click()
    result_for(driver, name, server_log)
