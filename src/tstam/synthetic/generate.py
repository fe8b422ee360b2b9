"""Writing a synthetic benchmark to disk (docs/design.md, The synthetic benchmark): clips as real encoded videos plus
UCF101-format split files, so the real decode -> flow -> train -> test -> fuse path runs on it.

Seeds. The main seed gives one seed per split (``split_seed``); each clip's generator is seeded
with ``(split seed, crc32(class name), clip index)``, so a clip does not depend on the other
classes or on how many clips are generated, and train and test never share a generator.

Reuse. ``benchmark.json`` (generator version, seed, config) is written first and ``.complete``
last. Calling ``generate`` on a folder whose ``benchmark.json`` matches is a no-op when
``.complete`` exists, and otherwise resumes: every video is written to a temporary name and
renamed, so an existing video file is whole and is kept. A folder generated with another seed,
config or generator version is refused rather than mixed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

import tstam
from tstam.config import to_dict
from tstam.errors import OutputError
from tstam.files import check_writable_dir, write_json_atomic
from tstam.video import write_video

from .classes import ClassDef, get_class
from .config import SynthConfig
from .layout import (
    ANNOTATIONS_NAME,
    BENCHMARK_NAME,
    COMPLETE_NAME,
    SPLITS_DIR,
    VIDEOS_DIR,
    ClipAnnotation,
    OtherActionAnnotation,
    video_id,
    write_annotations,
    write_splits,
)
from .render import render_scene
from .scene import Scene, sample_scene

__all__ = ["GENERATOR_VERSION", "split_seed", "clip_rng", "make_clip", "plan_clips", "generate"]

log = logging.getLogger(__name__)

# Bump whenever the frames generated for a given (seed, config) change: benchmark.json records
# it, and a folder made by another version is not reused.
GENERATOR_VERSION = 3
_SPLIT_IDS = {"train": 0, "test": 1}


def split_seed(seed: int, split: str) -> int:
    """The seed of one split, derived from the main seed (train and test differ)."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"split={split!r} is not valid; expected one of {list(_SPLIT_IDS)}")
    return int(np.random.SeedSequence([int(seed), _SPLIT_IDS[split]]).generate_state(1)[0])


def clip_rng(seed: int, split: str, class_name: str, index: int) -> np.random.Generator:
    """The generator of one clip (see module docstring)."""
    entropy = [split_seed(seed, split), zlib.crc32(class_name.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def make_clip(cdef: ClassDef, cfg: SynthConfig, rng: np.random.Generator) -> tuple[Scene, np.ndarray]:
    """Sample and render one clip: (scene, frames (T, H, W, 3) uint8 RGB)."""
    scene = sample_scene(cdef, cfg, rng)
    return scene, render_scene(scene)


def plan_clips(cfg: SynthConfig) -> list[tuple[str, ClassDef, int, int, int, int]]:
    """Every clip to generate: (split, class, label, index in split, group no, clip no)."""
    test_groups = math.ceil(cfg.test_per_class / cfg.clips_per_group)
    out = []
    for label, name in enumerate(cfg.classes):
        cdef = get_class(name)
        for split, count, first_group in (("test", cfg.test_per_class, 1),
                                          ("train", cfg.train_per_class, test_groups + 1)):
            for i in range(count):
                group_no = first_group + i // cfg.clips_per_group
                out.append((split, cdef, label, i, group_no, i % cfg.clips_per_group + 1))
    return out


def _manifest(cfg: SynthConfig, seed: int) -> dict[str, Any]:
    classes = [get_class(n) for n in cfg.classes]
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "split_seeds": {s: split_seed(seed, s) for s in _SPLIT_IDS},
        "config": to_dict(cfg),
        "classes": [{"label": i, "name": c.name, "group": c.group, "motion": c.motion,
                     "colour": c.colour, "mirror": c.mirror} for i, c in enumerate(classes)],
        "flip_invariant": all(c.mirror == c.name for c in classes),
        # Not compared on reuse; files are byte-identical only with the same versions.
        "versions": {"tstam": tstam.__version__, "numpy": np.__version__, "av": av.__version__},
    }


def _check_existing(bench: Path, manifest: dict[str, Any]) -> None:
    try:
        old = json.loads(bench.read_text())
    except json.JSONDecodeError as e:
        raise OutputError(f"{bench}: unreadable ({e}); delete the folder to regenerate") from None
    if isinstance(old.get("config"), dict):  # a field added since (e.g. idle_rotation) had its default then
        old["config"] = {**{k: v for k, v in to_dict(SynthConfig()).items() if k not in old["config"]},
                         **old["config"]}
    differs = [k for k in ("generator_version", "seed", "config") if old.get(k) != manifest[k]]
    if differs:
        raise OutputError(
            f"{bench.parent} already holds a synthetic benchmark with a different "
            f"{', '.join(differs)}; choose another output folder or delete this one"
        )


def generate(out_dir: str | os.PathLike, cfg: SynthConfig, *, seed: int, progress: bool = False) -> Path:
    """Generate (or reuse) a synthetic benchmark in ``out_dir``.

    Args:
        out_dir: output folder (created); layout in ``layout.py``.
        cfg: what to generate (``make_config("demo")`` by default in the CLI).
        seed: the main seed; the same seed and config give byte-identical frames.
        progress: show a progress bar (only on a terminal).

    Returns:
        The ``splits`` folder (``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``); the
        videos are in the sibling ``videos`` folder.

    Raises:
        OutputError: ``out_dir`` holds a benchmark made with another seed, config or version.
    """
    cfg.validate()
    out = Path(out_dir)
    splits_dir, videos_dir = out / SPLITS_DIR, out / VIDEOS_DIR
    manifest = _manifest(cfg, seed)
    bench, complete = out / BENCHMARK_NAME, out / COMPLETE_NAME
    if not complete.exists():
        check_writable_dir(out)  # before any work (a complete benchmark may be read-only)
    if bench.exists():
        _check_existing(bench, manifest)
        if complete.exists():
            log.info("reusing the complete synthetic benchmark in %s", out)
            return splits_dir
        log.info("resuming the unfinished synthetic benchmark in %s", out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(bench, manifest)
    start = time.perf_counter()
    clips: list[ClipAnnotation] = []
    written = 0
    plan = plan_clips(cfg)
    bar = tqdm(plan, desc="synth", unit="clip", disable=not (progress and sys.stderr.isatty()))
    for split, cdef, label, index, group_no, clip_no in bar:
        vid = video_id(cdef.name, group_no, clip_no)
        rel = f"{cdef.name}/{vid}.{cfg.container}"
        path = videos_dir / rel
        scene = sample_scene(cdef, cfg, clip_rng(seed, split, cdef.name, index))
        if not path.exists():
            tmp = path.with_name(f".{vid}.tmp.{cfg.container}")
            write_video(tmp, render_scene(scene), cfg.fps, quality=cfg.quality)
            os.replace(tmp, path)
            written += 1
        clips.append(ClipAnnotation(
            video_id=vid, path=rel, split=split, label=label, class_name=cdef.name,
            group=cdef.group, window=scene.window, num_frames=cfg.num_frames, fps=cfg.fps,
            height=cfg.height, width=cfg.width,
            others=tuple(OtherActionAnnotation(o.class_name, cfg.classes.index(o.class_name), o.window, o.actors)
                         for o in scene.others),
        ))
    write_splits(splits_dir, list(cfg.classes), clips)
    write_annotations(out / ANNOTATIONS_NAME, clips)
    write_json_atomic(complete, {"videos": len(clips), "generator_version": GENERATOR_VERSION})
    log.info("synthetic benchmark: %d videos (%d written) of %d classes in %s, %.1f s",
             len(clips), written, len(cfg.classes), out, time.perf_counter() - start)
    return splits_dir
