"""``tstam serve`` on the command line: bad input (missing checkpoint, port in use, bad host,
bad limits, no serve extra) gives a clear message and exit status 2 without a traceback, and
the core and the other subcommands never import the web stack; the samples of --samples DIR."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tstam.cli import main
from tstam.serve.config import SERVE_EXTRA_MODULES
from tstam.serve.server import bind

from helpers.models import CLASSES
from helpers.realdata import VIDEOS as REAL_VIDEOS


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
    (["--port", "70000"], "argument --port: '70000' is not valid; expected an integer from 0 to 65535"),
    (["--max-upload-mb", "nan"], "argument --max-upload-mb: 'nan' is not valid; expected a finite number"),
    (["--max-upload-mb", "0"], "argument --max-upload-mb: '0' is not valid; expected a finite number > 0"),
    (["--workers", "0"], "argument --workers: '0' is not valid; expected an integer >= 1"),
    (["--samples", "/no/such/folder"], "--samples /no/such/folder: not a folder"),
    (["--header-timeout", "0"], "argument --header-timeout: '0' is not valid; expected a finite number > 0"),
    (["--job-timeout", "inf"], "argument --job-timeout: 'inf' is not valid; expected a finite number"),
    (["--min-upload-rate", "-1"], "argument --min-upload-rate: '-1' is not valid; expected a finite number > 0"),
    (["--max-uploads", "0"], "argument --max-uploads: '0' is not valid; expected an integer >= 1"),
    (["--max-connections", "8"], "max_connections=8 is not valid; expected more than max_uploads + workers + "
                                 "queue + 1 = 15, so that /healthz and the page's questions get through"),
    (["--allowed-hosts", "http://box.lan"], "allowed_hosts (--allowed-hosts) ['http://box.lan'] is not valid"),
    (["--allowed-hosts", ","], "allowed_hosts (--allowed-hosts) [] is not valid: empty"),
])
def test_bad_settings(capsys, serve_ckpts, args, message):
    code, err = _serve(capsys, "--rgb", str(serve_ckpts["rgb"]), "--port", "0", *args)
    assert code == 2 and message in err


def test_bad_settings_from_python():
    """The same limits hold for ``ServeConfig`` built in Python (no argparse in between)."""
    from tstam.config import ConfigError
    from tstam.serve.config import ServeConfig

    for kw, message in [({"port": 70000}, "port=70000 is not valid"), ({"max_upload_mb": float("nan")}, "nan"),
                        ({"workers": 0}, "workers=0"), ({"crops": 2}, "crops=2"),
                        ({"body_timeout": float("nan")}, "body_timeout=nan is not valid"),
                        ({"shutdown_timeout": 0}, "shutdown_timeout=0 is not valid"),
                        ({"poll_timeout": "5"}, "poll_timeout='5' is not valid"),
                        ({"allowed_hosts": ("localhost:8000",)}, r"\['localhost:8000'\] is not valid")]:
        with pytest.raises(ConfigError, match=message):
            ServeConfig(**kw)


def test_the_host_names_a_server_answers_to():
    """On loopback only this machine's names (a page of another site reaching the server through
    its own name that resolves to 127.0.0.1 is refused: DNS rebinding); on every interface any
    name; on one other address that address; --allowed-hosts replaces these."""
    from tstam.serve.config import ServeConfig

    d = ServeConfig()
    assert d.host_names("127.0.0.1") == {"localhost", "127.0.0.1", "::1"} == d.host_names("::1")
    assert d.host_names("127.0.0.2") == d.host_names("127.0.0.1")  # all of 127/8 is loopback
    assert d.host_names("0.0.0.0") is None and d.host_names("::") is None
    assert d.host_names("192.168.1.20") == {"192.168.1.20"}
    assert ServeConfig(allowed_hosts=("Box.lan", "[fe80::1]")).host_names("0.0.0.0") == {"box.lan", "fe80::1"}
    assert ServeConfig(allowed_hosts=("box.lan", "*")).host_names("127.0.0.1") is None
    from tstam.cli import build_parser

    args = build_parser().parse_args(["serve", "--rgb", "x.pt", "--allowed-hosts", "box.lan, 10.0.0.2"])
    assert args.allowed_hosts == ("box.lan", "10.0.0.2")  # ServeConfig checks them


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


WEB = ("fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "fastapi_offline")


@pytest.mark.slow
def test_core_and_other_subcommands_without_the_web_stack(serve_ckpts):
    """One fresh interpreter: the core imports none of the web stack; then, with the serve extra's
    modules blocked as if not installed, `tstam serve` says what to install and `tstam predict` works."""
    clip, ckpt = str(REAL_VIDEOS / "v_BaseballPitch_g01_c01.avi"), str(serve_ckpts["rgb"])
    code = (f"import json, sys\nimport tstam, tstam.api, tstam.inference, tstam.visualize, tstam.serve\n"
            f"from tstam.cli import build_parser, main\nbuild_parser()\n"
            f"loaded = sorted(m for m in {WEB!r} if m in sys.modules)\n"
            f"for m in {WEB!r}: sys.modules[m] = None\n"
            f"serve = main(['serve', '--rgb', {ckpt!r}])\npredict = main(['predict', {clip!r}, '--rgb', {ckpt!r}])\n"
            f"print(json.dumps({{'loaded': loaded, 'serve': serve, 'predict': predict}}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"loaded": [], "serve": 2, "predict": 0}, (out, r.stderr)
    assert "needs the 'serve' extra (missing: " + ", ".join(SERVE_EXTRA_MODULES.values()) + ")" in r.stderr
    assert 'pip install -e ".[serve]"' in r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert any(row[:1] == ["1"] and row[1] in CLASSES for row in rows if len(row) > 1), r.stdout  # the top-k table


def test_samples_from_a_folder(tmp_path):
    """`--samples DIR`: the folder's videos, with the class of UCF101-style names."""
    from tstam.serve.samples import folder_samples

    got = {s.name: s.label for s in folder_samples(REAL_VIDEOS)}
    assert got == {"mmaction2_test.mp4": None, "v_ApplyEyeMakeup_g01_c01.avi": "ApplyEyeMakeup",
                   "v_BaseballPitch_g01_c01.avi": "BaseballPitch"}
    (tmp_path / "notes.txt").write_text("no video here")
    with pytest.raises(ValueError, match="folder holds no video file"):
        folder_samples(tmp_path)
