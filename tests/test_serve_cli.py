"""``tstam serve`` on the command line: bad input (missing checkpoint, port in use, bad host,
bad limits, no serve extra) gives a clear message and exit status 2 without a traceback, and
the core and the other subcommands never import the web stack."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from predict_models import REAL_VIDEOS
from tstam.cli import main
from tstam.serve.config import SERVE_EXTRA_MODULES
from tstam.serve.server import bind


def _serve(capsys, *args: str) -> tuple[int, str]:
    code = main(["serve", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_checkpoint(capsys, tmp_path):
    code, err = _serve(capsys, "--rgb", str(tmp_path / "nope.pt"), "--port", "0")
    assert code == 2 and f"{tmp_path / 'nope.pt'}: checkpoint not found" in err
    code, err = _serve(capsys, "--port", "0")
    assert code == 2 and "give an RGB checkpoint, a flow checkpoint, or both" in err


def test_port_in_use(capsys, serve_ckpts):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _serve(capsys, "--rgb", str(serve_ckpts["rgb"]), "--port", str(port))
    assert code == 2 and f"--port {port}: already in use on 127.0.0.1" in err and "--port 0" in err


@pytest.mark.parametrize("host, message", [
    ("http://localhost:8000", "not an IP address or host name (no scheme, port or path)"),
    ("192.0.2.1", "not an address of this machine"),   # TEST-NET-1: never assigned to a machine
    ("local host", "not an IP address or host name"),
])
def test_bad_host(capsys, serve_ckpts, host, message):
    code, err = _serve(capsys, "--rgb", str(serve_ckpts["rgb"]), "--host", host)
    assert code == 2 and f"--host {host!r}: {message}" in err


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "port=70000 is not valid; expected 0 .. 65535"),
    (["--max-upload-mb", "nan"], "max_upload_mb=nan is not valid"),
    (["--max-upload-mb", "0"], "max_upload_mb=0.0 is not valid"),
    (["--workers", "0"], "workers=0, queue=4 are not valid"),
    (["--samples", "/no/such/folder"], "--samples /no/such/folder: not a folder"),
])
def test_bad_settings(capsys, serve_ckpts, args, message):
    code, err = _serve(capsys, "--rgb", str(serve_ckpts["rgb"]), "--port", "0", *args)
    assert code == 2 and message in err


def test_bind_default_is_loopback_and_port_zero_picks_one():
    sock = bind("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
    finally:
        sock.close()
    from tstam.cli import build_parser

    args = build_parser().parse_args(["serve", "--rgb", "x.pt"])
    assert args.host == "127.0.0.1"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


BLOCK = "import sys\nfor m in {mods!r}: sys.modules[m] = None  # as if the serve extra were not installed\n"


def test_without_the_serve_extra(serve_ckpts, tmp_path):
    block = BLOCK.format(mods=list(SERVE_EXTRA_MODULES) + ["starlette"])
    r = _python(block + f"from tstam.cli import main\nsys.exit(main(['serve', '--rgb', {str(serve_ckpts['rgb'])!r}]))")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "needs the 'serve' extra (missing: fastapi, uvicorn, python-multipart, fastapi-offline)" in r.stderr
    assert 'pip install -e ".[serve]"' in r.stderr
    # the core and another subcommand work without it
    clip = REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"
    r = _python(block + "import tstam, tstam.api\nfrom tstam.cli import main\n"
                f"sys.exit(main(['predict', {str(clip)!r}, '--rgb', {str(serve_ckpts['rgb'])!r}]))")
    assert r.returncode == 0 and "BaseballPitch" in r.stdout, r.stderr


def test_core_does_not_import_the_web_stack():
    r = _python("import sys, tstam, tstam.api, tstam.inference, tstam.visualize, tstam.serve\n"
                "from tstam.cli import build_parser\nbuild_parser()\n"
                "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'multipart', 'python_multipart', "
                "'fastapi_offline') if m in sys.modules))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
