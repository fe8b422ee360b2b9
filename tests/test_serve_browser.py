"""The page of ``tstam serve`` in a real browser: Debian's headless Chromium driven by Selenium
through Debian's chromedriver (installed by ``make test``; nothing is downloaded). It opens the
page, uploads a real clip through the file picker, waits for the result, checks the rendered
tables against an in-process prediction and the pictures, checks that nothing was loaded from
elsewhere and that a phone-width window does not scroll sideways, saves screenshots, runs a
sample clip, and drops a file that is not a video on the drop zone."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from predict_models import REAL_VIDEOS

from tstam.inference import Recognizer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
CLIP = REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"
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


@pytest.fixture
def browser(tmp_path):
    driver = new_driver(tmp_path / "profile")
    yield driver
    driver.quit()


def _wait(driver, condition, what: str, server_log: tuple[str, ...] | list[str] = ()):
    """Until ``condition(driver)``; on time-out the page's state, the browser's log and the end of
    the server's log say why."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition)
    except TimeoutException as e:
        state = driver.execute_script(
            "return {running, job: document.getElementById('job-name').textContent, "
            "stages: [...document.querySelectorAll('#stages li')].map(l => l.dataset.stage + ':' + l.className), "
            "result_hidden: document.getElementById('result').hidden, error: document.getElementById('error').textContent}")
        raise AssertionError(f"timed out waiting for {what}; page: {state}; browser log: {driver.get_log('browser')}; "
                             "server log:\n" + "".join(server_log[-30:])) from e


def shot(driver, path: Path, width: int) -> Path:
    """A full-page screenshot at ``width`` CSS pixels."""
    driver.set_window_size(width, 1000)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    driver.save_screenshot(str(path))
    return path


def _table(driver, stream: str) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'table.topk[data-stream="{stream}"] tbody tr')
    return [(r.find_element(By.CSS_SELECTOR, "td.cls").text, r.find_element(By.CSS_SELECTOR, "td.p").text) for r in rows]


def result_for(driver, name: str, server_log: list[str]) -> None:
    """Until the result of ``name`` and its pictures are shown (one check in the page, so that it
    cannot see the previous result together with the new name)."""
    _wait(driver, lambda d: d.execute_script(
        "const shown = !document.getElementById('result').hidden "
        "  && document.getElementById('job-name').textContent === arguments[0];"
        "return shown && ['attention', 'animation'].every(id => { const i = document.getElementById(id); "
        "  return i.complete && i.naturalWidth > 0; });", name), f"the result of {name} and its pictures", server_log)


def open_page(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"), "the page to start")


def click_sample(driver, name: str, server_log: list[str]) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#sample-list button[data-sample="{name}"]').click()
    result_for(driver, name, server_log)


def test_page_upload_sample_and_bad_file(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    d = browser
    open_page(d, server.url)
    samples = d.find_elements(By.CSS_SELECTOR, "#sample-list button")
    assert len(samples) == len(server.get("/api/samples").json()) > 0
    assert d.find_element(By.ID, "classes-title").get_attribute("textContent") == "classes (3)"

    # a real clip through the file picker
    d.find_element(By.ID, "file").send_keys(str(CLIP))
    result_for(d, CLIP.name, server.output)
    truth = Recognizer.from_paths(rgb=server.ckpts["rgb"], flow=server.ckpts["flow"]).predict(CLIP)
    assert _table(d, "fused") == [(c, f"{p:.3f}") for c, p in truth.top(5)]
    for stream in ("rgb", "flow"):
        assert _table(d, stream) == [(c, f"{p:.3f}") for c, p in truth.top(5, stream)]
    assert d.find_element(By.ID, "top1").text.startswith(truth.label)
    stages = d.find_elements(By.CSS_SELECTOR, "#stages li")
    assert [s.get_attribute("data-stage") for s in stages] == [
        "upload", "queue", "decode", "model rgb", "flow flow", "model flow", "pictures"]
    assert all("done" in s.get_attribute("class") for s in stages)
    png_width = d.execute_script("return document.getElementById('attention').naturalWidth")
    assert png_width > 25 * 96  # the attention PNG: 25 frame tiles of 96 px
    assert "decode" in d.find_element(By.ID, "timings").text
    png = shot(d, tmp_path / "serve_page.png", 1280)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {png}")

    # nothing came from another origin
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server.url) for u in urls), urls

    # a phone-width window: the page itself does not scroll sideways (the wide picture scrolls in its box)
    shot(d, tmp_path / "serve_page_phone.png", 390)
    assert d.execute_script("return document.documentElement.scrollWidth") <= d.execute_script(
        "return window.innerWidth")

    # a sample clip
    d.set_window_size(1280, 1000)
    name = samples[0].get_attribute("data-sample")
    click_sample(d, name, server.output)
    # a file that is not a video, dropped on the drop zone (as the page sees a drag from the desktop):
    # the decoder's message is shown
    d.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File(["not a video\\n"], "notes.txt", {type: "text/plain"}));
        const zone = document.getElementById("drop");
        for (const type of ["dragenter", "dragover", "drop"])
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));""")
    _wait(d, lambda d: d.find_element(By.ID, "error").is_displayed(), "the error message", server.output)
    assert "422: notes.txt: unsupported extension '.txt'" in d.find_element(By.ID, "error").text
