"""Attention pictures from the attention that the forward returns (paper 3, eq. 2-6; no hooks).

For one video (a ``tstam.inference.Prediction``):

- a PNG: the sampled frames (centre crop, what the model saw) in a row; for each stream the
  temporal weight alpha of each snippet as a bar under its frame, then one row per spatial head
  with that head's map over the frame as a heat map (each head on one colour scale across
  frames, so a flat map looks flat and frames can be compared);
- an animated GIF (or MP4) of the clip with the heads' mean map over each frame (the nearest
  sampled snippet's) and a bar showing that snippet's alpha.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tstam.errors import InputError, OutputError
from tstam.files import check_writable_dir
from tstam.inference.clip import animation_frames
from tstam.inference.recognizer import Prediction, Recognizer
from tstam.plotting import pyplot
from tstam.video import FrameSubset

__all__ = ["attention_figure", "attention_animation", "visualize_video", "picture_names", "Pictures", "FigureLayout"]

log = logging.getLogger(__name__)

TILE = 96           # pixels per frame tile in the PNG
GAP = 4             # pixels between tiles
OVERLAY = 0.5       # heat-map opacity


@dataclass(frozen=True)
class FigureLayout:
    """Pixel layout of the PNG: exact, so that tiles stay square and bars sit under their frames."""

    left: int = 110     # room for the row labels
    right: int = 16
    top: int = 44       # room for the title line
    bottom: int = 44    # room for the frame indices
    vgap: int = 6       # between rows
    bar_h: int = 56     # height of an alpha bar row


Row = tuple[str, str, object]  # (kind "image" or "bars", label, strip image or alpha values)


@dataclass
class Pictures:
    """The files written for one video."""

    png: Path
    animation: Path | None
    prediction: Prediction


def _scale(maps: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(S, h, w) maps (each sums to 1) -> values in [0, 1] on one scale for all S, and the range
    as multiples of the uniform weight 1/(h*w). A nearly flat head stays flat (value 0, a light tint)."""
    rel = maps * (maps.shape[-1] * maps.shape[-2])                  # 1.0 = uniform
    lo, hi = float(rel.min()), float(rel.max())
    if hi - lo < 0.05:                                               # < 5 % of uniform: no structure to show
        return np.zeros_like(rel), lo, hi
    return (rel - lo) / (hi - lo), lo, hi


def _heat(values: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Values (S, h, w) in [0, 1] over frames (S, t, t, 3): jet colours, more opaque where higher."""
    import matplotlib

    t = frames.shape[1]
    up = np.stack([cv2.resize(v.astype(np.float32), (t, t), interpolation=cv2.INTER_LINEAR) for v in values])
    up = np.clip(up, 0, 1)[..., None]                                # (S, t, t, 1)
    colour = matplotlib.colormaps["jet"](up[..., 0])[..., :3] * 255
    a = 0.15 + (OVERLAY + 0.1) * up
    return (frames.astype(np.float32) * (1 - a) + colour * a).astype(np.uint8)


def _row(tiles: np.ndarray) -> np.ndarray:
    """(S, t, t, 3) -> one (t, S*(t+GAP)-GAP, 3) strip on white."""
    s, t = tiles.shape[:2]
    out = np.full((t, s * (t + GAP) - GAP, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        out[:, i * (t + GAP): i * (t + GAP) + t] = tile
    return out


def _tiles(frames: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA if f.shape[0] > size else cv2.INTER_CUBIC)
                     for f in frames])


def _rows(pred: Prediction, frames: np.ndarray) -> list[Row]:
    """The figure's rows: the frame strip, then per stream its alpha bars and one heat-map strip per head."""
    rows: list[Row] = [("image", "frames", _row(frames))]
    for name, res in pred.streams.items():
        if res.temporal is not None:
            rows.append(("bars", f"{name} alpha", res.temporal))
        if res.spatial is not None:
            for j, maps in enumerate(res.spatial):                       # maps (S, h, w)
                values, lo, hi = _scale(maps)
                rows.append(("image", f"{name} head {j + 1}\n{lo:.2f}-{hi:.2f}x", _row(_heat(values, frames))))
    return rows


def _draw_bars(ax, alpha: np.ndarray, s: int) -> None:
    """Alpha as one bar under each frame tile; the largest orange, the uniform weight dashed."""
    x = np.arange(s) * (TILE + GAP) + TILE / 2
    colours = ["tab:orange" if i == int(alpha.argmax()) else "tab:blue" for i in range(s)]
    ax.bar(x, alpha, width=TILE * 0.7, color=colours)
    ax.axhline(1.0 / s, color="grey", lw=0.8, ls="--")            # uniform weight
    ax.set_ylim(0, max(float(alpha.max()) * 1.2, 1.5 / s))
    ax.set_yticks([0, round(float(alpha.max()), 3)])
    ax.tick_params(labelsize=7)
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)


def attention_figure(pred: Prediction, path: str | Path, *, k: int = 3, dpi: int = 100,
                     layout: FigureLayout = FigureLayout()) -> Path:
    """Draw the sampled frames, alpha bars and per-head spatial maps of every stream to a PNG.

    Args:
        pred: a prediction (``Recognizer.predict``).
        path: the PNG to write (its folder is created).
        k: classes listed in the title.
        dpi: resolution; a tile is 96 pixels.
        layout: margins and row heights in pixels.

    Returns:
        The path written.
    """
    plt = pyplot()
    path = Path(path)
    check_writable_dir(path.parent)
    frames = _tiles(pred.frames, TILE)                                  # (S, T, T, 3)
    s = len(frames)
    rows = _rows(pred, frames)
    L = layout
    width = s * (TILE + GAP) - GAP
    heights = [TILE if kind == "image" else L.bar_h for kind, _, _ in rows]
    fig_w, fig_h = L.left + width + L.right, L.top + sum(heights) + L.vgap * (len(rows) - 1) + L.bottom
    fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    y = fig_h - L.top
    ax = None
    for (kind, label, data), h in zip(rows, heights):
        y -= h
        ax = fig.add_axes((L.left / fig_w, y / fig_h, width / fig_w, h / fig_h))
        y -= L.vgap
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8, labelpad=6)
        ax.set_xticks([])
        ax.set_yticks([])
        if kind == "image":
            ax.imshow(data, extent=(0, width, TILE, 0), interpolation="nearest", aspect="auto")
        else:
            _draw_bars(ax, np.asarray(data), s)
        ax.set_xlim(0, width)
    assert ax is not None
    ax.set_xticks(np.arange(s) * (TILE + GAP) + TILE / 2)
    ax.set_xticklabels([str(int(i)) for i in pred.frame_indices], fontsize=7)
    ax.set_xlabel("frame index (centre crop shown)", fontsize=8)
    top_k = ", ".join(f"{c} {p:.2f}" for c, p in pred.top(k))
    fuse = "fused " + ":".join(f"{m} {w:g}" for m, w in pred.weights.items()) + ": " if len(pred.streams) > 1 else ""
    fig.text(8 / fig_w, 1 - 22 / fig_h, f"{Path(pred.source).name}  -  {fuse}{top_k}", fontsize=10, va="center")
    fig.text(1 - L.right / fig_w, 1 - 22 / fig_h, "alpha: orange = largest, dashed = uniform 1/N;  "
             "heads: jet from the head's min to max weight over all frames (x uniform 1/hw)",
             fontsize=7, ha="right", va="center", color="dimgrey")
    try:
        fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 3})
    except OSError as e:
        raise OutputError(f"{path}: cannot write the picture ({e.strerror or e})") from None
    finally:
        plt.close(fig)
    return path


def attention_animation(pred: Prediction, path: str | Path, *, stream: str | None = None, size: int = 192,
                        max_frames: int = 120) -> Path:
    """An animated GIF (``.gif``) or video (``.mp4``, ...) of the clip with the attention overlay.

    Each frame (centre crop) shows the mean of the spatial heads of the nearest sampled snippet
    of ``stream`` (default: flow when present, it weighs 3 in the fusion) and, as a bar at the
    bottom, that snippet's alpha relative to the largest.

    Args:
        pred: a prediction made with ``keep_video=True``.
        path: output file; the extension picks the format.
        stream: "rgb" or "flow".
        size: output side in pixels.
        max_frames: at most this many frames (evenly subsampled).

    Returns:
        The path written.
    """
    from tstam.video import write_video

    if pred.video is None:
        raise ValueError("the prediction has no frames; predict with keep_video=True")
    with_maps = [n for n, r in pred.streams.items() if r.spatial is not None or r.temporal is not None]
    if not with_maps:
        raise ValueError("the model's head returns no attention (head 'tsn'); nothing to animate")
    name = stream or ("flow" if "flow" in with_maps else with_maps[0])
    if name not in with_maps:
        raise ValueError(f"stream {name!r} has no attention; expected one of {with_maps}")
    res = pred.streams[name]
    path = Path(path)
    check_writable_dir(path.parent)
    y, x, c = pred.crop
    t_all = len(pred.video)
    frame_ids = animation_frames(t_all, max_frames)
    if isinstance(pred.video, FrameSubset):  # only some frames were kept while decoding: the nearest of them
        kept = pred.video.indices
        nearest_kept = np.clip(np.searchsorted(kept, frame_ids), 1, len(kept) - 1) if len(kept) > 1 else None
        if nearest_kept is not None:
            left, right = kept[nearest_kept - 1], kept[nearest_kept]
            frame_ids = np.unique(np.where(frame_ids - left <= right - frame_ids, left, right))
        else:
            frame_ids = kept[:1]
    nearest = np.abs(frame_ids[:, None] - pred.frame_indices[None, :]).argmin(1)   # snippet per frame
    crops = _tiles(pred.video[frame_ids, y:y + c, x:x + c], size)
    if res.spatial is not None:
        values, _, _ = _scale(res.spatial.mean(0))                                 # (S, h, w) in [0, 1]
        crops = _heat(values[nearest], crops)
    out = []
    alpha = res.temporal
    for img, sn, fid in zip(crops, nearest, frame_ids):
        img = np.ascontiguousarray(img)
        if alpha is not None:
            bar = int(round((size - 8) * alpha[sn] / max(float(alpha.max()), 1e-12)))
            cv2.rectangle(img, (4, size - 12), (size - 4, size - 4), (40, 40, 40), -1)
            cv2.rectangle(img, (4, size - 12), (4 + bar, size - 4), (255, 255, 255), -1)
        cv2.putText(img, f"{name} {fid}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(img)
    fps = max(pred.fps * len(frame_ids) / max(t_all, 1), 1.0)
    if path.suffix.lower() == ".gif":
        _write_gif(path, out, fps)
    else:
        write_video(path, np.stack(out), fps)
    return path


def _write_gif(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """GIF with each frame quantised by Pillow's fast octree (~80x faster than its default
    median cut when saving many frames; ``tstam.video.write_video`` uses the default)."""
    from PIL import Image

    ims = [Image.fromarray(f).quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
           for f in frames]
    try:
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the animation ({e.strerror or e})") from None


def picture_names(videos: Sequence[str | Path]) -> dict[str, str]:
    """A distinct name per video for its pictures: the file stem, prefixed with as many parent
    folders as it takes to tell apart videos of the same stem (``a/clip.avi``, ``b/clip.avi`` ->
    ``a_clip``, ``b_clip``), with the extension added for ``clip.avi`` beside ``clip.mp4``.

    Returns:
        {str(video): name}; the same file given twice gets one name.
    """
    files = {str(v): Path(v).resolve() for v in videos}
    by_stem: dict[str, list[Path]] = {}
    for f in dict.fromkeys(files.values()):
        by_stem.setdefault(f.stem, []).append(f)

    def label(f: Path, depth: int, ext: bool) -> str:
        folders = f.parent.parts[1:] if f.parent.is_absolute() else f.parent.parts  # no "/" anchor
        return "_".join([*folders[len(folders) - depth:][:depth], f.stem + (f"_{f.suffix[1:]}" if ext else "")])

    chosen: dict[Path, str] = {}
    for group in by_stem.values():
        options = ((depth, ext) for ext in (False, True) for depth in range(max(len(f.parts) for f in group)))
        for depth, ext in options:
            labels = [label(f, depth, ext) for f in group]
            if len(set(labels)) == len(labels):
                break
        chosen.update(zip(group, labels))
    taken: set[str] = set()
    for f, name in chosen.items():  # "a_clip.avi" next to "a/clip.avi": number the later one
        unique, i = name, 2
        while unique in taken:
            unique, i = f"{name}_{i}", i + 1
        taken.add(unique)
        chosen[f] = unique
    return {v: chosen[f] for v, f in files.items()}


def visualize_video(recognizer: Recognizer, video: str | Path, out_dir: str | Path, *, num_crops: int = 1,
                    animation: str | None = ".gif", prediction: Prediction | None = None,
                    name: str | None = None) -> Pictures:
    """Predict a video (or use ``prediction``, made with ``keep_video=True``) and write its pictures.

    Files: ``<out_dir>/<name>_attention.png`` and ``..._attention<animation>`` (None: no
    animation); ``name`` defaults to the video's file stem (several videos: :func:`picture_names`).
    """
    if name and any(c in name for c in "/\\\0"):  # pictures stay inside out_dir
        raise InputError(f"picture name {name!r} is not valid; expected a file name without '/', '\\' or NUL")
    out_dir = check_writable_dir(out_dir)
    pred = prediction or recognizer.predict(video, num_crops=num_crops, keep_video=animation is not None)
    stem = name or (Path(pred.source).stem if pred.source != "<frames>" else "frames")
    png = attention_figure(pred, out_dir / f"{stem}_attention.png")
    anim = None
    has_attention = any(r.temporal is not None or r.spatial is not None for r in pred.streams.values())
    if animation and has_attention:
        anim = attention_animation(pred, out_dir / f"{stem}_attention{animation}")
    log.info("attention pictures of %s: %s %s", pred.source, png, anim or "")
    return Pictures(png=png, animation=anim, prediction=pred)
