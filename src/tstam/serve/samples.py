"""Sample clips offered by the page of ``tstam serve``.

By default a few clips of our own synthetic benchmark (``tstam.synthetic``), written at start
into the server's private folder (about 0.1 s, ~15 kB each): they carry no licence condition
(UCF101's clips are CC BY-NC, so the package does not ship them) and they are the first test
clips of the benchmark that ``tstam demo`` trains on with its default seed, so a demo-trained
model meets clips it has not seen in training. ``--samples DIR`` offers the videos of a folder
instead (e.g. UCF101 clips on the user's own disk).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tstam.errors import InputError

__all__ = ["Sample", "synthetic_samples", "folder_samples", "SAMPLE_CLASSES", "MAX_FOLDER_SAMPLES"]

log = logging.getLogger(__name__)

SAMPLE_CLASSES = ("Spin", "Grow", "Approach", "WaveGreen")  # two motion classes, an interaction, an appearance
MAX_FOLDER_SAMPLES = 12                                       # the first this many videos of --samples DIR


@dataclass
class Sample:
    """One clip the page offers."""

    name: str                 # file name, the key in /api/samples/{name}
    path: Path                # where the server reads it
    label: str | None      # its true class when known (synthetic, or a UCF101-style name), else None
    about: str                # where it comes from, for the page


def synthetic_samples(out_dir: Path, *, classes: Sequence[str] = SAMPLE_CLASSES) -> list[Sample]:
    """Write the first test clip of each of ``classes`` of the benchmark ``tstam demo`` makes
    with its defaults (``DemoConfig``: preset, overrides, seed)."""
    from tstam.demo.config import DemoConfig
    from tstam.synthetic import clip_rng, get_class, make_clip, make_config
    from tstam.synthetic.layout import video_id
    from tstam.video import write_video

    demo = DemoConfig()
    cfg, seed = make_config(demo.synth_preset, dict(demo.synth_overrides)), demo.seed
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in classes:
        _scene, frames = make_clip(get_class(name), cfg, clip_rng(seed, "test", name, 0))  # as generate() makes it
        path = write_video(out_dir / f"{video_id(name, 1, 1)}.{cfg.container}", frames, cfg.fps, quality=cfg.quality)
        out.append(Sample(path.name, path, name, f"synthetic demo test clip ({get_class(name).group} group, seed {seed})"))
    log.info("wrote %d synthetic sample clips to %s", len(out), out_dir)
    return out


def folder_samples(folder: str | Path) -> list[Sample]:
    """The first ``MAX_FOLDER_SAMPLES`` video files of ``folder`` (UCF101-style names give the class);
    a file that is a link to somewhere outside the folder is left out.

    Raises:
        InputError: the folder does not exist or holds no video file.
    """
    from tstam.inference import collect_videos

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--samples {folder}: not a folder; give a folder of video files")
    base = folder.resolve()
    videos = collect_videos([folder])[:MAX_FOLDER_SAMPLES]
    out, seen = [], set()
    for path in videos:
        if not path.resolve().is_relative_to(base):  # a link to a file elsewhere: the server offers only the folder
            log.warning("--samples: %s links to %s, outside %s; not offered", path, path.resolve(), base)
            continue
        if path.name in seen:  # the name is the key: keep the first of equal names
            continue
        seen.add(path.name)
        m = re.fullmatch(r"v_(.+)_g\d+_c\d+", path.stem)
        out.append(Sample(path.name, path, m.group(1) if m else None, f"from {folder}"))
    return out
