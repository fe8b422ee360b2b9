"""Hostile inputs as an attacker writes them: YAML alias bombs, self-referring and deeply nested
documents, files that load with ``weights_only`` but carry malformed facts."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from tstam.checkpoint import load_checkpoint, save_checkpoint


def alias_bomb_value(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" YAML value: ``width ** levels`` strings once its aliases are expanded, in
    about 400 bytes."""
    text = "&l0 [" + ",".join(["lol"] * width) + "]"
    for i in range(1, levels):
        text = f"[{text},&l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]]"
    return text


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A train config whose ``model.se_blocks`` is :func:`alias_bomb_value`: a key tstam knows, so
    its value is checked (and, unbounded, shown in the message)."""
    return f"model:\n  se_blocks: {alias_bomb_value(levels, width)}\n"


SELF_REFERENCE = "model:\n  se_blocks: &a [*a]\n"                       # a list that holds itself
DEEP_NESTING = "model:\n  se_blocks: " + "[" * 1000 + "]" * 1000 + "\n"  # PyYAML's composer recursion: past Python's limit


def write_config_files(folder: Path) -> dict[str, Path]:
    """Config files a user must get a clear refusal for: {name: path}."""
    files = {
        "bomb": (alias_bomb(), "bomb.yaml"),
        "self": (SELF_REFERENCE, "self.yaml"),
        "deep": (DEEP_NESTING, "deep.yaml"),
    }
    out = {}
    for key, (text, name) in files.items():
        out[key] = folder / name
        out[key].write_text(text)
    out["latin1"] = folder / "latin1.yaml"
    out["latin1"].write_bytes("run:\n  out_dir: caf\xe9\n".encode("latin-1"))
    out["big"] = folder / "big.yaml"
    out["big"].write_text("#" * (1 << 20) + "\n")  # one byte over 1 MiB, only a comment
    return out


def malformed_checkpoint(src: Path, dst: Path, *, data: dict[str, Any] | None = None, **entries: Any) -> Path:
    """``src`` (a tstam checkpoint) saved as ``dst`` with top-level ``entries`` replaced and its
    stored config's ``data`` section updated with ``data``: a file ``torch.load(weights_only=True)``
    reads, holding facts tstam never writes."""
    st = load_checkpoint(src)
    st.update(entries)
    if data is not None:
        st["config"] = {**st.get("config", {}), "data": {**st.get("config", {}).get("data", {}), **data}}
    return save_checkpoint(dst, st)


def safetensors_with_meta(dst: Path, meta_text: str) -> Path:
    """A safetensors file of one tensor whose ``tstam`` metadata is ``meta_text``."""
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(dst), metadata={"tstam": meta_text})
    return dst




# --- video files that cost more to decode than their bytes say ---------------------------------

def many_frames_video(path: Path, frames: int, size: tuple[int, int] = (32, 24), fps: int = 25) -> Path:
    """A real MPEG-4 file of ``frames`` black frames of ``size`` (W, H): 30,000 of them (20 minutes)
    take a few hundred KB. Encoded one frame at a time, so that making it costs no memory."""
    import av

    w, h = size
    black = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(frames):
            for packet in stream.encode(black):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gif_bomb(path: Path, canvas: tuple[int, int] = (8000, 8000), frames: int = 2000) -> Path:
    """A GIF89a whose logical screen is ``canvas`` (W, H) and whose ``frames`` images are one pixel
    each, written byte by byte after the GIF89a specification: every frame a decoder shows is the
    whole canvas (64 megapixels at 8000 x 8000), the file about 20 bytes a frame."""
    w, h = canvas
    out = bytearray(b"GIF89a" + struct.pack("<HH", w, h) + bytes([0xF0, 0, 0]) + bytes([0, 0, 0, 255, 255, 255]))
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop for ever
    for i in range(frames):
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", 1) + b"\x00\x00"  # 10 ms, keep the canvas (disposal 1)
        x, y = (i * 7919) % w, (i * 104729) % h
        out += b"\x2c" + struct.pack("<HHHH", x, y, 1, 1) + b"\x00"      # a 1 x 1 image at (x, y)
        out += b"\x02\x02\x4c\x01\x00"  # LZW, minimum code size 2: clear, colour 1, end; then no more blocks
    out += b"\x3b"
    path.write_bytes(bytes(out))
    return path


def still_image_named_video(path: Path, fmt: str) -> Path:
    """A real PNG or JPEG picture (Pillow) saved under a video name such as ``clip.mp4``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def mp4_turned(path: Path, upright: np.ndarray, fps: int = 10, quarters: int = 1) -> Path:
    """An MP4 as a phone held upright records it: the pixels stored turned a quarter to the left
    (landscape) and the track header's display matrix saying "rotate 90 clockwise to show". The
    matrix (ISO/IEC 14496-12 ``tkhd``: a, b, u, c, d, v, x, y, w in 16.16 / 2.30 fixed point) is
    written into the file's bytes, as the phone's muxer does; ``upright`` is (T, H, W, 3).
    ``quarters``: 1, 2 or 3 quarter turns to the left stored (the matrix says 90, 180, 270 clockwise)."""
    from tstam.video import write_video

    write_video(path, np.ascontiguousarray(np.rot90(upright, quarters, axes=(1, 2))), fps, codec="mpeg4")
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd")
    version = data[at + 4]
    matrix_at = at + 4 + 4 + (8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4) + 8 + 2 + 2 + 2 + 2
    identity = struct.pack(">9i", 1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    assert bytes(data[matrix_at:matrix_at + 36]) == identity, "no identity matrix where tkhd keeps it"
    one = 1 << 16
    a, b, c, d = {1: (0, one, -one, 0), 2: (-one, 0, 0, -one), 3: (0, -one, one, 0)}[quarters]
    data[matrix_at:matrix_at + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    return path


def with_cover_first(path: Path, frames: np.ndarray, cover: np.ndarray, fps: int = 10, *, flagged: bool) -> Path:
    """A file whose first video stream is one picture (``cover``) and whose second is the video.
    ``flagged``: an MP4 whose picture is marked ``attached_pic`` (cover art, as music and podcast
    files carry); else a Matroska file whose first stream is a one-frame video."""
    import av

    with av.open(str(path), "w") as container:
        h, w = frames.shape[1:3]
        first = container.add_stream("mjpeg" if flagged else "mpeg4", rate=fps)
        first.width, first.height = cover.shape[1], cover.shape[0]
        first.pix_fmt = "yuvj420p" if flagged else "yuv420p"
        if flagged:
            first.disposition = av.stream.Disposition.attached_pic
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        for packet in first.encode(av.VideoFrame.from_ndarray(cover, format="rgb24")):
            container.mux(packet)
        for packet in first.encode():
            container.mux(packet)
        for f in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def peak_rss_kb(argv: list[str]) -> tuple[int, int, str]:
    """Run ``python -m tstam *argv`` and return (exit status, its peak resident memory in KB from
    the kernel's ``ru_maxrss`` of that process, its stderr)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "tstam", *argv], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, int(usage.ru_maxrss), err.read().decode(errors="replace")
