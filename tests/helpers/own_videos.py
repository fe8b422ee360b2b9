"""A user's own dataset as the README describes it: a folder of class folders holding real video
files (rendered by the synthetic benchmark's renderer), class names with spaces and capitals,
phone-style names repeated across classes, .mp4 and .avi mixed, some in sub-folders."""
from __future__ import annotations

from pathlib import Path

from tstam.synthetic import clip_rng, get_class
from tstam.synthetic.config import make_config
from tstam.synthetic.render import render_scene
from tstam.synthetic.scene import sample_scene
from tstam.video import write_video

# folder name -> the synthetic class its clips show (motion and colour differ, so both streams can learn)
CLASSES = {"Jump Rope": "MoveUp", "WAVE hello": "WaveRed", "clap": "Spin", "Run fast": "WaveBlue"}
PICKED = "Jump Rope/IMG_2041.mp4"  # the clip the README's predict command names (a unique stem)


def clip_path(folder: str, i: int) -> str:
    """Clip i of a class: IMG_000i in every class (repeated stems), .mp4 in ``phone/`` for even i,
    .avi in the class folder for odd i; the README's clip last in its class."""
    if folder == "Jump Rope" and i == 4:
        return PICKED
    return f"{folder}/phone/IMG_{i:04d}.mp4" if i % 2 == 0 else f"{folder}/IMG_{i:04d}.avi"


def make_folder_dataset(root: Path, *, classes: int = 3, per_class: int = 5, size: int = 48,
                        frames: int = 12, seed: int = 0) -> dict[str, str]:
    """Write the dataset; returns {path relative to root: class folder}."""
    cfg = make_config("tiny", {"height": size, "width": size, "num_frames": frames, "distractors_max": 0,
                              "classes": list(CLASSES.values())})
    out = {}
    for folder, name in list(CLASSES.items())[:classes]:
        for i in range(per_class):
            rel = clip_path(folder, i)
            scene = sample_scene(get_class(name), cfg, clip_rng(seed, "train", name, i))
            write_video(root / rel, render_scene(scene), fps=25)
            out[rel] = folder
    return out
