"""Pretrained weights one step away: the real download code (urllib) against a real HTTP server on
loopback serving generated files (tests/helpers/http_files.py): the right hash, a wrong hash, a
transfer cut off and resumed with an HTTP range, a server without ranges, 404, nothing listening;
``tstam weights`` and ``run.init_weights=<name>`` through the command line."""
from __future__ import annotations

import hashlib
import os
import re
import stat

import numpy as np
import pytest
import torch

from tstam.cli import main
from tstam.download import cache_dir, download
from tstam.errors import WeightsError
from tstam.models import PRETRAINED
from tstam.models.weights import PretrainedFile

from helpers.http_files import Served, closed_port_url, file_server

DATA = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()  # 300 kB: several reads
SHA = hashlib.sha256(DATA).hexdigest()


def test_right_hash_downloads_once_atomically(tmp_path):
    with file_server() as srv:
        srv.files["/w.pth"] = Served(DATA)
        dest = tmp_path / "cache" / "w.pth"
        assert download(srv.url + "/w.pth", dest, sha256=SHA[:10]) == dest
        assert dest.read_bytes() == DATA
        assert stat.S_IMODE(dest.stat().st_mode) == 0o644  # as every other output, not mkstemp's 0600
        assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]  # no .part left
        assert download(srv.url + "/w.pth", dest, sha256=SHA) == dest  # the full hash checks too
        assert len(srv.requests) == 1  # the second call found it in the cache


def test_wrong_hash_deletes_the_download_and_names_both(tmp_path):
    wrong = "0" * 9 if not SHA.startswith("0" * 9) else "1" * 9
    with file_server() as srv:
        srv.files["/w.pth"] = Served(DATA)
        dest = tmp_path / "w.pth"
        with pytest.raises(WeightsError) as e:
            download(srv.url + "/w.pth", dest, sha256=wrong)
    msg = str(e.value)
    assert f"{srv.url}/w.pth: the downloaded file has SHA-256 {SHA[:16]}..., expected {wrong}..." in msg
    assert f"download it by hand from {srv.url}/w.pth and put it at {dest}" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []  # neither the file nor its part


def test_a_cut_transfer_keeps_its_part_and_resumes_with_a_range(tmp_path):
    dest = tmp_path / "w.pth"
    with file_server() as srv:
        srv.files["/w.pth"] = Served(DATA, cut_after=120_000)
        with pytest.raises(WeightsError) as e:
            download(srv.url + "/w.pth", dest, sha256=SHA[:9])
        assert (f"cannot download {srv.url}/w.pth: the transfer stopped after 120000 of {len(DATA)} bytes"
                in str(e.value))
        assert "run the same command again to resume" in str(e.value)
        part = tmp_path / "w.pth.part"
        assert part.read_bytes() == DATA[:120_000] and not dest.exists()
        srv.files["/w.pth"] = Served(DATA)  # the connection works again
        download(srv.url + "/w.pth", dest, sha256=SHA[:9])
        assert srv.requests[-1] == ("/w.pth", "bytes=120000-")  # only the rest was asked for
    assert dest.read_bytes() == DATA and not part.exists()


def test_a_server_without_ranges_restarts_cleanly(tmp_path):
    dest = tmp_path / "w.pth"
    (tmp_path / "w.pth.part").write_bytes(DATA[:5000])  # a part from an earlier, cut download
    with file_server() as srv:
        srv.files["/w.pth"] = Served(DATA, ranges=False)
        download(srv.url + "/w.pth", dest, sha256=SHA[:9])
        assert srv.requests == [("/w.pth", "bytes=5000-")]
    assert dest.read_bytes() == DATA  # the whole file once, not the part and the whole file


def test_a_part_that_is_not_a_prefix_of_the_file_starts_again(tmp_path):
    """A part as long as the file (its range is refused with 416) but with other bytes."""
    dest = tmp_path / "w.pth"
    (tmp_path / "w.pth.part").write_bytes(bytes(len(DATA)))
    with file_server() as srv:
        srv.files["/w.pth"] = Served(DATA)
        download(srv.url + "/w.pth", dest, sha256=SHA[:9])
        assert [r for _, r in srv.requests] == [f"bytes={len(DATA)}-", None]
    assert dest.read_bytes() == DATA


def test_404_and_offline_name_the_url_and_where_to_put_the_file(tmp_path):
    dest = tmp_path / "cache" / "w.pth"
    with file_server() as srv:
        with pytest.raises(WeightsError) as e:
            download(srv.url + "/gone.pth", dest, sha256=SHA[:9])
    assert str(e.value) == (f"cannot download {srv.url}/gone.pth: HTTP 404 Not Found; download it by hand from "
                            f"{srv.url}/gone.pth and put it at {dest}")
    url = closed_port_url()
    with pytest.raises(WeightsError) as e:
        download(url, dest, sha256=SHA[:9])
    assert re.fullmatch(rf"cannot download {re.escape(url)} \(no connection: .*refused.*\); download it by hand "
                        rf"from {re.escape(url)} and put it at {re.escape(str(dest))}", str(e.value)), str(e.value)
    assert not dest.exists() and not dest.with_name("w.pth.part").exists()


def test_a_cached_file_with_other_bytes_is_refused(tmp_path):
    dest = tmp_path / "w.pth"
    dest.write_bytes(DATA[:-1])
    with pytest.raises(WeightsError, match=r"w.pth: SHA-256 .*, expected .*; delete it to download it again"):
        download(closed_port_url(), dest, sha256=SHA[:9])


def test_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("TSTAM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TSTAM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tstam"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tstam"


def test_the_registry_names_public_files_by_their_published_hash():
    """Each entry's hash is the ``-<hex>.`` part of its published file name (torch.hub's convention)
    and its URL ends in that name; the defaults are the files the docs name."""
    for f in PRETRAINED.values():
        assert f.url.endswith("/" + f.filename)
        assert re.fullmatch(r"[a-z_]+-([0-9a-f]+)\.pth", f.filename).group(1) == f.sha256
        assert f.licence and f.origin
    assert PRETRAINED["imagenet"].filename == "bn_inception-52deb4733.pth"
    text = open(os.path.join(os.path.dirname(__file__), "..", "docs", "training.md")).read()
    for f in PRETRAINED.values():
        assert f.url in text and f.sha256 in text


@pytest.fixture
def served_entry(monkeypatch, tmp_path):
    """A registry entry ``test_w`` whose URL is a loopback server; the cache in tmp_path."""
    monkeypatch.setenv("TSTAM_CACHE", str(tmp_path / "cache"))
    with file_server() as srv:
        def register(data: bytes, sha: str) -> PretrainedFile:
            srv.files["/test_w-x.pth"] = Served(data)
            entry = PretrainedFile("test_w", "test_w-x.pth", srv.url + "/test_w-x.pth", sha, "generated", "none")
            monkeypatch.setitem(PRETRAINED, "test_w", entry)
            return entry
        yield register, srv


def test_weights_command_downloads_and_refuses(served_entry, capsys, tmp_path):
    register, srv = served_entry
    entry = register(DATA, SHA[:12])
    assert main(["weights", "download", "test_w"]) == 0
    assert capsys.readouterr().out == f"test_w: {entry.path()} (SHA-256 {SHA[:12]}... checked)\n"
    assert entry.path().read_bytes() == DATA and entry.path().parent == tmp_path / "cache" / "weights"
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cache    {entry.path()}\n" in out and "bn_inception-52deb4733.pth (not downloaded)" in out
    entry.path().unlink()
    register(DATA, "0" * 12 if not SHA.startswith("0" * 12) else "1" * 12)
    assert main(["weights", "download", "test_w"]) == 2
    err = capsys.readouterr().err
    assert f"tstam weights: error: {entry.url}: the downloaded file has SHA-256 {SHA[:16]}" in err
    assert "Traceback" not in err and not entry.path().exists()
    assert main(["weights", "download", "nope"]) == 2
    assert "weight file name(s) ['nope'] are not valid; expected imagenet, tsn_imagenet, test_w" in capsys.readouterr().err


def test_init_weights_by_name_is_downloaded_and_loaded(served_entry, tmp_path, monkeypatch):
    """run.init_weights=<name>: fetched over HTTP into the cache, then loaded: under partial BN a
    frozen BN layer keeps the served file's statistics (set here to values no init produces)."""
    from tstam.checkpoint import load_checkpoint, save_checkpoint
    from tstam.engine.config import load_train_config
    from tstam.engine.train import fit
    from tstam.models import weights_file

    from helpers.engine_store import make_store, tiny_config
    from helpers.models import make_checkpoint

    register, srv = served_entry
    donor = make_checkpoint(tmp_path / "donor.pt", "rgb")
    st = load_checkpoint(donor)
    key = "backbone.inception_3a_1x1_bn.running_mean"
    mark = torch.arange(st["model"][key].numel(), dtype=torch.float32)
    st["model"][key] = mark
    save_checkpoint(donor, st)
    data = donor.read_bytes()
    entry = register(data, hashlib.sha256(data).hexdigest()[:12])
    store = make_store(tmp_path / "store", n_train=4, n_test=4)
    cfg = tiny_config(store, tmp_path / "run", optim={"epochs": 1, "bn": "partial"},
                      run={"eval_every": 0, "max_steps": 1, "init_weights": "test_w", "tensorboard": False})
    fit(load_train_config(cfg))
    assert entry.path().read_bytes() == data and len(srv.requests) == 1
    assert torch.equal(load_checkpoint(tmp_path / "run" / "last.pt")["model"][key], mark)
    monkeypatch.chdir(tmp_path)  # the bare published name, not in this folder: the cached copy
    assert weights_file("test_w-x.pth") == entry.path() and len(srv.requests) == 1
