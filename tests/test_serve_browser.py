"""The page of ``tstam serve`` in a real browser: Debian's headless Chromium driven by Selenium
through Debian's chromedriver (installed by ``make test``; nothing is downloaded). It opens the
page, uploads a real clip through the file picker, waits for the result, checks the rendered
tables against an in-process prediction and the pictures, checks that nothing was loaded from
elsewhere and that a phone-width window does not scroll sideways, saves screenshots, runs a
sample clip, and drops a file that is not a video on the drop zone."""
from __future__ import annotations

import pytest

from tstam.inference import Recognizer

from helpers.browser import click_sample, new_driver, open_page, result_for, shot, wait_for, wait_in_page
from helpers.realdata import VIDEOS as REAL_VIDEOS

pytestmark = pytest.mark.slow  # a real browser against a real server

CLIP = REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"


@pytest.fixture
def browser(tmp_path):
    driver = new_driver(tmp_path / "profile")
    yield driver
    driver.quit()


def _table(driver, stream: str) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f'table.topk[data-stream="{stream}"] tbody tr')
    return [(r.find_element(By.CSS_SELECTOR, "td.cls").text, r.find_element(By.CSS_SELECTOR, "td.p").text) for r in rows]


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
    wait_in_page(d, lambda d: d.find_element(By.ID, "error").is_displayed(), "the error message", server.output)
    assert "422: notes.txt: unsupported extension '.txt'" in d.find_element(By.ID, "error").text


def test_api_docs_run_under_their_content_security_policy(server, browser):
    """/docs (Swagger UI) and /redoc render with the scripts the server's policy allows; what the
    policy blocks is only what would have come from elsewhere (ReDoc's logo from its CDN), and
    nothing did."""
    d = browser
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
        "e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")})
    for path, rendered in (("docs", "return document.querySelectorAll('.opblock').length"),
                           ("redoc", "return document.body.innerText.includes('/api/predict')")):
        d.get(server.url + path)
        wait_for(d, lambda d, js=rendered: d.execute_script(js), f"/{path} to render",
                 lambda: f"policy violations: {d.execute_script('return window.cspViolations')}")
        blocked = d.execute_script("return window.cspViolations")
        elsewhere = [v for v in blocked if v.split(" ", 1)[1].startswith(("http://", "https://"))
                     and not v.split(" ", 1)[1].startswith(server.url)]
        assert elsewhere == blocked, (path, blocked)  # nothing of the server's own, no inline code, no eval
        urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        others = {u for u in urls if not u.startswith(server.url)}
        assert others <= {v.split(" ", 1)[1] for v in blocked}, (path, urls, blocked)  # tried, and blocked


def test_a_form_on_another_site_cannot_post_to_the_server(server, browser):
    """A page of another origin (another port of this machine) that posts a form to the API, as
    a cross-site request forgery would: the browser sends its Origin, the server answers 403."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    page = (f'<form id="f" method="post" enctype="multipart/form-data" action="{server.url}api/predict">'
            '<input name="crops" value="1"></form><script>document.getElementById("f").submit()</script>').encode()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{site.server_address[1]}/")
        wait_for(browser, lambda d: "is refused" in d.execute_script("return document.body.innerText"),
                 "the server's refusal", lambda: "page: " + browser.execute_script("return document.body.innerText"))
    finally:
        site.shutdown()
        site.server_close()
    text = browser.execute_script("return document.body.innerText")
    assert f"(Origin 'http://127.0.0.1:{site.server_address[1]}') is refused" in text, text
