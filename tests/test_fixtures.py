"""The vendored real files are the bytes their sources published (tests/data/README.md)."""
import hashlib

from helpers.realdata import REALDATA


def test_vendored_real_files_match_their_checksums():
    lines = (REALDATA / "SHA256SUMS").read_text().splitlines()
    assert len(lines) >= 180
    bad = []
    for line in lines:
        digest, name = line.split(maxsplit=1)
        path = REALDATA / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(name)
    assert bad == []
