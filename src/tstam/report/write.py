"""Writing a report folder: ``report.md``, its pictures and ``summary.json``.

Sections, in order: the inputs (score files, test protocol, run folders), accuracy per stream and
fused (``tables.accuracy_lines``), whatever the caller adds (the demo's class groups and attention
analysis), per class, the confusion matrices (test videos of all splits pooled; fused first), the
training curves of each run (from its ``metrics.jsonl``), attention pictures of a few test clips
(``tstam.visualize.attention_figure``, with the runs' checkpoints and fusion weights), and the
caller's closing lines.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tstam.engine import metrics
from tstam.engine.reports import plot_curves, save_confusion
from tstam.errors import TstamError
from tstam.files import check_writable_dir, write_json_atomic, write_text_atomic
from tstam.report import tables
from tstam.report.inputs import Entry, ReportInputs

__all__ = ["Clip", "write_report", "pick_clips", "take_in_turn", "run_clips", "safe_name"]

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """A test clip to draw: its id, the video file or (T, H, W, 3) RGB frames, a caption, and
    streams whose snippets are already sampled (``Recognizer.predict(clips=...)``: a store's flow)."""

    video_id: str
    source: Any
    caption: str
    clips: dict[str, Any] | None = None


def safe_name(video_id: str) -> str:
    """A file-name-safe form of a video id (ids may hold folders and spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("_") or "clip"


def take_in_turn(groups: Mapping[Any, Sequence[str]], k: int) -> list[str]:
    """Up to ``k`` items, one from each group in turn (groups in sorted order, each group's items in
    their order), so that as many groups as possible are shown."""
    queues = {g: list(v) for g, v in groups.items()}
    out: list[str] = []
    while len(out) < k and any(queues.values()):
        for g in sorted(queues):
            if queues[g] and len(out) < k:
                out.append(queues[g].pop(0))
    return out


def pick_clips(scores: Any, k: int) -> list[str]:
    """``k`` video ids of a score set, the classes in turn (ids sorted within a class)."""
    by_class: dict[int, list[str]] = {}
    for vid, label in sorted(zip(scores.video_ids, scores.labels.tolist())):
        by_class.setdefault(int(label), []).append(vid)
    return take_in_turn(by_class, k)


def _stored_flow(recognizer: Any, record: Any, data: Any) -> dict[str, Any]:
    """The flow stream's protocol snippets as the store holds them, centre-cropped as the test
    protocol's one crop (``FrameDataset``): the flow the model was tested on, and no TV-L1 to
    recompute; {} without a flow stream."""
    from tstam.data.datasets import FrameDataset
    from tstam.data.sampling import protocol_indices

    stream = recognizer.streams.get("flow")
    if stream is None:
        return {}
    data = dataclasses.replace(data, test_crops=1, workers=0)
    ds = FrameDataset([record], data=data, model=stream.config, mode="test")
    views = ds[0][0]                                                        # (1, S, C, size, size)
    fields = int(ds.records[0].num_frames) - 1
    return {"flow": (views[0], protocol_indices(fields, data.test_frames, int(stream.config.new_length)))}


def _clip_sources(checkpoint: Path, video_ids: Sequence[str], recognizer: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Per clip: the video file (``data.input=video``), or the frame store's RGB frames and stored
    flow snippets, found through the run's stored config (its annotations and ``data.root``)."""
    from tstam.checkpoint import load_stream
    from tstam.data.frames import list_indices, read_rgb_frames
    from tstam.data.records import frame_dir, video_path
    from tstam.engine.annotations import load_split
    from tstam.engine.config import load_train_config

    stream = load_stream(checkpoint)
    if not stream.train_config:
        raise TstamError(f"{checkpoint}: holds no training config, so its videos cannot be found")
    cfg = load_train_config(stream.train_config)
    train, val, test, _classes = load_split(cfg.annotations, cfg.data)
    records = {r.video_id: r for r in [*train, *val, *test]}
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    for vid in video_ids:
        rec = records.get(vid)
        if rec is None:
            raise TstamError(f"video {vid!r} is not in the annotations of {checkpoint} ({cfg.annotations.path})")
        if cfg.data.input == "video":
            out[vid] = (video_path(rec, cfg.data.root), {})
        else:
            d, tmpl = frame_dir(rec, cfg.data.root), cfg.data.rgb_tmpl
            frames = read_rgb_frames(d, [i - 1 for i in list_indices(d, tmpl)], tmpl)
            out[vid] = (frames, _stored_flow(recognizer, rec, cfg.data))
    return out


def run_clips(inputs: ReportInputs, k: int) -> tuple[Any, list[Clip]] | str:
    """A recognizer of the first split whose runs' checkpoints are there (with that split's fusion
    weights) and ``k`` of its test clips; or why none can be drawn."""
    from tstam.checkpoint import load_stream
    from tstam.inference import Recognizer

    for split in inputs.split_names():
        entries = inputs.splits[split]
        ckpts = {s: e.checkpoint for s, e in entries.items() if s in ("rgb", "flow") and e.checkpoint is not None}
        if not ckpts:
            continue
        fused = entries.get("fused")
        w = None
        if fused is not None and len(ckpts) == 2:  # the weights in the order of the fused streams
            by_stream = dict(zip(fused.scores.meta.get("inputs") or [], fused.scores.meta.get("weights") or []))
            w = [by_stream[s] for s in ("rgb", "flow")] if {"rgb", "flow"} <= set(by_stream) else None
        judge = fused or next(iter(entries.values()))
        ids = pick_clips(judge.scores, k)
        rec = Recognizer([load_stream(p) for p in ckpts.values()], weights=w)
        sources = _clip_sources(next(iter(ckpts.values())), ids, rec)
        pred = judge.scores.scores(inputs.mode).argmax(1)
        where = {v: i for i, v in enumerate(judge.scores.video_ids)}
        classes = judge.scores.classes
        clips = [Clip(v, sources[v][0], f"**{v}**: class {classes[judge.scores.labels[where[v]]]}; the "
                                        f"{judge.scores.name()} test scores put {classes[pred[where[v]]]} first",
                      sources[v][1]) for v in ids]
        return rec, clips
    return "the checkpoints that the score files name are not there"


def _inputs_lines(inputs: ReportInputs) -> list[str]:
    lines = ["## Inputs", "", "| split | stream | scores | test protocol (frames x crops) | run |", "|---|---|---|---|---|"]
    for sp in inputs.split_names():
        for st in inputs.streams():
            e: Entry | None = inputs.splits[sp].get(st)
            if e is not None:
                src = e.source if e.computed else f"`{e.source}`"
                lines.append(f"| {sp} | {st} | {src} | {e.protocol} | {f'`{e.run}`' if e.run else '–'} |")
    n = {len(es[next(iter(es))].scores.video_ids) for es in inputs.splits.values()}
    return lines + ["", f"{len(inputs.classes)} classes; {', '.join(map(str, sorted(n)))} test videos per split.", ""]


def _confusion_lines(inputs: ReportInputs, out: Path) -> list[str]:
    lines = ["## Confusion matrices", "", "Rows: true class, columns: predicted; shading normalised per row "
             "(counts in the cells up to 20 classes; `confusion_<stream>.csv` holds the counts)."
             + (" Test videos of all splits together." if len(inputs.splits) > 1 else ""), ""]
    for st in sorted(inputs.streams(), key=lambda s: s != "fused"):
        scores, labels = tables.pooled(inputs, st)
        save_confusion(metrics.confusion_matrix(scores, labels), inputs.classes, out / f"confusion_{st}")
        lines += [f"**{st}**", "", f"![{st} confusion matrix](confusion_{st}.png)", ""]
    return lines


def _curves_lines(inputs: ReportInputs, out: Path) -> list[str]:
    lines = ["## Training curves", ""]
    several = len(inputs.splits) > 1
    for sp in inputs.split_names():
        for st, e in inputs.splits[sp].items():
            src = e.run / "metrics.jsonl" if e.run is not None else None
            if src is None or not src.is_file():
                continue
            rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
            if not rows:
                continue
            name = f"curves_{st}{f'_split{sp}' if several else ''}.png"
            plot_curves(rows, out / name)
            val = [(r["val_top1"], r["epoch"]) for r in rows if r.get("val_top1") is not None]
            best = f"; best validation top-1 {tables.pct(max(val)[0])} % (epoch {max(val)[1]})" if val else ""
            lines += [f"**{st}**{f' (split {sp})' if several else ''}: `{e.run}`, {rows[-1].get('epoch')} epochs{best}", "",
                      f"![{st} training curves]({name})", ""]
    if len(lines) == 2:
        lines += ["No run folder with a `metrics.jsonl` among the inputs.", ""]
    return lines


def _attention_lines(out: Path, recognizer: Any, clips: Sequence[Clip]) -> list[str]:
    from tstam.visualize import attention_figure

    w = ", ".join(f"{m} {recognizer.weights[m]:g}" for m in recognizer.modalities)
    lines = ["## Attention on test clips", "", f"Each picture: the sampled frames (centre crop), the temporal weight "
             f"alpha of each as a bar, and each spatial head's map, per stream ({w}); predicted here with 1 crop.", ""]
    used: set[str] = set()
    for clip in clips:
        name = safe_name(clip.video_id)
        while name in used:
            name += "_"
        used.add(name)
        pred = recognizer.predict(clip.source, clips=clip.clips)
        if pred.source == "<frames>":  # frames read from the store: name the picture after the clip
            pred.source = clip.video_id
        png = attention_figure(pred, out / f"attention_{name}.png")
        lines += [f"{clip.caption}; predicted here: {pred.label}", "", f"![attention {clip.video_id}]({png.name})", ""]
    return lines


def write_report(inputs: ReportInputs, out: str | Path, *, title: str = "Report", intro: Sequence[str] = (),
                 extra: Sequence[str] = (), closing: Sequence[str] = (), clips: int | Sequence[Clip] = 4,
                 recognizer: Any = None, summary_extra: dict[str, Any] | None = None) -> Path:
    """Write ``<out>/report.md``, its pictures and ``summary.json``; returns the Markdown file.

    Args:
        inputs: ``tstam.report.gather`` (or ``inputs.entries_from_scores``) of the runs.
        out: the report folder (created).
        title, intro: the heading and the lines under it.
        extra: lines after the accuracy section; ``closing``: lines at the end.
        clips: how many test clips to draw (picked and found through the runs), or the clips
            themselves with ``recognizer``.
        summary_extra: more entries for ``summary.json``.
    """
    out = check_writable_dir(out)
    lines = [f"# {title}", "", *intro, *_inputs_lines(inputs), *tables.accuracy_lines(inputs), *extra,
             *tables.per_class_lines(inputs), *_confusion_lines(inputs, out), *_curves_lines(inputs, out)]
    if isinstance(clips, int):
        if clips > 0:
            try:
                got = run_clips(inputs, clips)
            except (TstamError, OSError) as e:  # the data moved since training: the rest of the report stands
                got = str(e)
            if isinstance(got, str):
                log.warning("attention pictures not drawn: %s", got)
                lines += ["## Attention on test clips", "", f"Not drawn: {got}.", ""]
            else:
                lines += _attention_lines(out, *got)
    elif clips:
        lines += _attention_lines(out, recognizer, clips)
    lines += list(closing)
    write_json_atomic(out / "summary.json", {**tables.summary(inputs), **(summary_extra or {})})
    path = write_text_atomic(out / "report.md", "\n".join(lines).rstrip("\n") + "\n")
    log.debug("report written to %s", path)  # the command prints where
    return path

