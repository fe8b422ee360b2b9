"""The screenshot of ``tstam serve`` in docs/serve.md: start the server with the given checkpoints (its
default settings), open the page in Debian's headless chromium, run one sample clip, save a
full-page PNG. Uses the browser test's helpers (tests/helpers/browser.py, serve.py); needs the dev extra
and chromium + chromium-driver (``make test`` installs them).

    tstam demo --out demo
    python docs/serve_screenshot.py demo/runs/rgb/last.pt demo/runs/flow/last.pt --sample v_Grow_g01_c01.avi
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' helpers package

from helpers.browser import click_sample, new_driver, open_page, shot  # noqa: E402
from helpers.serve import start_server, stop_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rgb")
    ap.add_argument("flow")
    ap.add_argument("--sample", default="v_Grow_g01_c01.avi", help="the sample clip to run")
    ap.add_argument("--width", type=int, default=1100, help="window width in CSS pixels")
    ap.add_argument("-o", "--out", default=str(Path(__file__).resolve().parent / "serve_page.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"rgb": Path(args.rgb), "flow": Path(args.flow)})
        driver = new_driver(Path(tmp) / "profile")
        try:
            open_page(driver, server.url)
            click_sample(driver, args.sample, server.output)
            png = shot(driver, Path(args.out), args.width)
        finally:
            driver.quit()
            stop_server(server)
    from PIL import Image

    Image.open(png).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)  # ~3x smaller
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
