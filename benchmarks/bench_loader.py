"""Loader cost per clip, today's FrameDataset against the baseline path, side by side in one run.

Writes a frame store of real JPEGs (240x320, textured, like UCF101 after extraction) to a temp
folder, then measures, for RGB and flow clips (N = 6 segments; flow 5 fields = 60 grey JPEGs a
clip; 224x224 crops):

1. CPU time per clip in this process (``time.process_time``, one thread as in a loader worker,
   items fetched and collated in batches of 8 as a worker does): the same (index, epoch) keys
   through each path, in alternating rounds; median and range. Paths:
   ``baseline`` (``BaselineFrameDataset`` below: FrameDataset as it was before the crop was
   resized on the training device, kept here to measure against), ``device`` (the default,
   ``data.crop_resize_on = "device"``: the worker decodes and crops; the resize to 224 and the
   flip run per batch on the training device, whose cost on this CPU is shown apart as ``+ device
   finish``) and ``loader`` (``crop_resize_on = "loader"``: the same reading, the resize in the
   worker). Train mode (multi-scale crop, flip) and the evaluation modes (val: centre crop; test:
   25 frames x 10 crops). In train mode also ``decode only``: reading and decoding the clip's
   JPEGs and nothing else, the floor of any path that gives the same clips.
2. That every path gives the baseline's clips byte for byte (finished on this CPU).
3. Loader clips/s with one worker (the per-worker rate; batch 8, the first batch not timed),
   baseline and default, alternating.

The baseline a loader must outrun is what one GPU training step consumes:
``benchmarks/gpu_check.py`` measures that on the GPU and divides. CPU time is the fair measure on
a shared machine; clips/s per worker depend on the load. Run:
    python benchmarks/bench_loader.py [--videos 16] [--keys 32] [--rounds 5] [--clips 48]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from tstam.data import DataConfig, FrameDataset, VideoRecord, build_loader, frame_dir
from tstam.data.frames import _file_bytes  # the readers' own file access, for the decoding floor
from tstam.data.sampling import snippet_indices
from tstam.data.transforms import crop, hflip, resize
from tstam.models import ModelConfig


def make_store(root: Path, videos: int, frames: int, seed: int = 0) -> list[VideoRecord]:
    rng = np.random.default_rng(seed)
    recs = []
    for v in range(videos):
        base = cv2.GaussianBlur(rng.integers(0, 256, (240 + 64, 320 + 64, 3), dtype=np.uint8), (0, 0), 3)
        flow_base = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (0, 0), 8)
        d = root / f"v_{v:03d}"
        d.mkdir()
        for i in range(1, frames + 1):
            img = base[i % 64:i % 64 + 240, i % 64:i % 64 + 320]  # moving texture
            cv2.imwrite(str(d / f"img_{i:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if i < frames:
                cv2.imwrite(str(d / f"flow_x_{i:05d}.jpg"), flow_base, [cv2.IMWRITE_JPEG_QUALITY, 90])
                cv2.imwrite(str(d / f"flow_y_{i:05d}.jpg"), 255 - flow_base, [cv2.IMWRITE_JPEG_QUALITY, 90])
        recs.append(VideoRecord(video_id=d.name, path=f"C/{d.name}.avi", label=v % 101, num_frames=frames))
    return recs


# ------------------------------------------------------------------------------------------------
# BASELINE: FrameDataset's path before the training crop was resized on the device, copied here
# unchanged (reading and training transform) so that every run can measure against it.

def _baseline_imread(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise ValueError(f"{path}: frame missing or unreadable")
    return img


def _baseline_rgb(video_dir: Path, indices: list[int], tmpl: str) -> np.ndarray:
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        if i not in cache:
            cache[i] = cv2.cvtColor(_baseline_imread(video_dir / tmpl.format(int(i) + 1), cv2.IMREAD_COLOR),
                                    cv2.COLOR_BGR2RGB)
        out.append(cache[i])
    return np.stack(out)


def _baseline_flow(video_dir: Path, indices: list[int], x_tmpl: str, y_tmpl: str) -> np.ndarray:
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        if i not in cache:
            x = _baseline_imread(video_dir / x_tmpl.format(int(i) + 1), cv2.IMREAD_GRAYSCALE)
            y = _baseline_imread(video_dir / y_tmpl.format(int(i) + 1), cv2.IMREAD_GRAYSCALE)
            cache[i] = np.stack([x, y])
        out.append(cache[i])
    return np.stack(out)


class BaselineFrameDataset(FrameDataset):
    """BASELINE (for measuring only): every frame decoded whole into its own array, stacked, then
    resized, cropped, resized to the input size and flipped in the loader worker."""

    def _item(self, record: VideoRecord, rng: np.random.Generator):
        d = frame_dir(record, self.root)
        num_items = record.num_frames if self.modality == "rgb" else record.num_frames - 1
        idx = snippet_indices(self._starts(num_items, rng), self.snippet_length, num_items)
        S = idx.shape[0]
        if self.modality == "rgb":
            frames = torch.from_numpy(_baseline_rgb(d, idx.ravel().tolist(), self.data.rgb_tmpl)).permute(0, 3, 1, 2)
        else:
            frames = torch.from_numpy(_baseline_flow(d, idx.ravel().tolist(), self.data.flow_x_tmpl,
                                                     self.data.flow_y_tmpl))
        clip = frames.reshape(S, -1, *frames.shape[-2:])
        if self.mode != "train":
            views = self._eval_tf(clip)
            return views[0] if self.mode == "val" else views
        y, x, h, w, flip = self._draw(rng)
        clip = resize(crop(resize(clip, self.data.resize), y, x, h, w), (self.input_size, self.input_size))
        if flip:
            clip = hflip(clip, flow=self.modality == "flow")
        return clip.contiguous()

# ------------------------------------------------------------------------------------------------


BATCH = 8  # clips per loader batch here


def loader_rate(ds: FrameDataset, workers: int, clips: int, batch: int = BATCH) -> float:
    """Clips/s that a loader of ``ds`` with ``workers`` processes delivers (the first batch not timed)."""
    loader = build_loader(ds, batch_size=batch, shuffle=True, workers=workers, seed=0, drop_last=True)
    n, epoch, t0 = 0, 0, None
    while n < clips:
        loader.set_epoch(epoch)
        for _x, y in loader:
            if t0 is None:  # first batch: worker start-up, not throughput
                t0 = time.perf_counter()
                continue
            n += len(y)
            if n >= clips:
                break
        epoch += 1
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def cpu_ms(fn, n: int) -> float:
    """Process CPU milliseconds per unit of ``fn()`` doing ``n`` units."""
    t = time.process_time()
    fn()
    return (time.process_time() - t) / n * 1e3


def worker_pass(ds: FrameDataset, keys: list[tuple[int, int]], batch: int = BATCH) -> None:
    """What a loader worker does for these keys: fetch a batch's items, collate them, let them go."""
    for i in range(0, len(keys), batch):
        default_collate([ds[k] for k in keys[i:i + batch]])


def finished(ds: FrameDataset, keys: list[tuple[int, int]], batch: int = BATCH) -> list[torch.Tensor]:
    """The clips of these keys as the training loop gets them after ``finish_batch`` (on this CPU)."""
    out = []
    for i in range(0, len(keys), batch):
        out.extend(ds.batch_transform(default_collate([ds[k] for k in keys[i:i + batch]])[0]))
    return out


def key_files(ds: FrameDataset, key: tuple[int, int]) -> list[str]:
    """The JPEGs a training clip of ``key`` decodes (its generator's snippet draws, as the datasets make them)."""
    index, epoch = key
    record = ds.records[index]
    rng = np.random.default_rng([ds.seed, epoch, index])
    n = record.num_frames if ds.modality == "rgb" else record.num_frames - 1
    idx = snippet_indices(ds._starts(n, rng), ds.snippet_length, n).ravel().tolist()
    d = frame_dir(record, ds.root)
    if ds.modality == "rgb":
        return [str(d / ds.data.rgb_tmpl.format(i + 1)) for i in idx]
    return [str(d / t.format(i + 1)) for i in idx for t in (ds.data.flow_x_tmpl, ds.data.flow_y_tmpl)]


def decode_only(files: list[list[str]], flags: int) -> None:
    """Read and decode the files, nothing else: the floor of any path that gives the same clips."""
    for clip in files:
        for f in clip:
            cv2.imdecode(np.frombuffer(_file_bytes(f), np.uint8), flags)


def side_by_side(recs: list[VideoRecord], root: str, modality: str, mode: str, keys: list[tuple[int, int]],
                 rounds: int) -> dict:
    """Per-clip CPU ms of each path over ``rounds`` alternating rounds, and whether the clips agree."""
    model = ModelConfig(modality=modality, num_classes=101)
    kw = dict(root=root, mode=mode, model=model, seed=0, check=False)
    paths = {"baseline": BaselineFrameDataset(recs, data=DataConfig(), **kw),
             "device": FrameDataset(recs, data=DataConfig(), **kw),
             "loader": FrameDataset(recs, data=DataConfig(crop_resize_on="loader"), **kw)}
    if mode != "train":  # crop_resize_on concerns training only
        del paths["loader"]
    batch = BATCH if mode != "test" else 1  # a test item holds 250 crops
    times: dict[str, list[float]] = {name: [] for name in paths}
    if mode == "train":
        times["+ device finish"] = []
        times["decode only"] = []
        device = paths["device"]
        batches = [default_collate([device[k] for k in keys[i:i + BATCH]])[0] for i in range(0, len(keys), BATCH)]
        files = [key_files(device, k) for k in keys]
        flags = cv2.IMREAD_COLOR if modality == "rgb" else cv2.IMREAD_GRAYSCALE
    for r in range(rounds):
        for name in list(paths) if r % 2 == 0 else list(reversed(paths)):
            times[name].append(cpu_ms(lambda: worker_pass(paths[name], keys, batch), len(keys)))  # noqa: B023
        if mode == "train":
            times["+ device finish"].append(cpu_ms(lambda: [device.batch_transform(b) for b in batches], len(keys)))
            times["decode only"].append(cpu_ms(lambda: decode_only(files, flags), len(keys)))
    base = finished(paths["baseline"], keys, batch)
    same = {name: all(torch.equal(a, b) for a, b in zip(finished(ds, keys, batch), base, strict=True))
            for name, ds in paths.items() if name != "baseline"}
    return {"times": times, "same": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--keys", type=int, default=32, help="clips per path and round (test mode: a quarter)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of the CPU-time comparison")
    ap.add_argument("--clips", type=int, default=48, help="clips timed per loader (0: skip the loader rates)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a loader worker (tstam.data.loader.worker_init)
    cv2.setNumThreads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        recs = make_store(Path(tmp), args.videos, args.frames)
        print(f"frame store: {args.videos} videos x {args.frames} frames (240x320 JPEG) in "
              f"{time.perf_counter() - t0:.1f} s")
        print("\n1-2. CPU ms per clip in one process (median [min-max] of the rounds); new / baseline; "
              "clips equal to the baseline's")
        print("| modality | mode | path | CPU ms per clip | new / baseline | same clips |")
        print("|---|---|---|---|---|---|")
        for modality in ("flow", "rgb"):
            for mode in ("train", "val", "test"):
                n = args.keys if mode != "test" else max(1, args.keys // 4)
                keys = [(i % len(recs), 1 + i // len(recs)) for i in range(n)]
                res = side_by_side(recs, tmp, modality, mode, keys, args.rounds)
                med = {name: statistics.median(t) for name, t in res["times"].items()}
                for name, t in res["times"].items():
                    ratio = f"{med[name] / med['baseline']:.3f}" if name != "baseline" else ""
                    if name == "+ device finish":  # what the clip costs in all when the device is this CPU
                        ratio = f"device + finish: {(med['device'] + med[name]) / med['baseline']:.3f}"
                    if name == "decode only":
                        ratio = f"{ratio} (the floor)"
                    same = {True: "yes", False: "NO"}.get(res["same"].get(name), "")
                    print(f"| {modality} | {mode} | {name} | {med[name]:.2f} [{min(t):.2f}-{max(t):.2f}] | {ratio} "
                          f"| {same} |", flush=True)
        if args.clips:
            print("\n3. loader clips/s with one worker (train mode), alternating, median of 2")
            print("| modality | baseline | device (default) | new / baseline |")
            print("|---|---|---|---|")
            model_kw = dict(root=tmp, mode="train", data=DataConfig(), seed=0, check=False)
            for modality in ("flow", "rgb"):
                model = ModelConfig(modality=modality, num_classes=101)
                base_ds = BaselineFrameDataset(recs, model=model, **model_kw)
                new_ds = FrameDataset(recs, model=model, **model_kw)
                rates: dict[str, list[float]] = {"baseline": [], "device": []}
                for r in range(2):
                    pairs = [("baseline", base_ds), ("device", new_ds)]
                    for name, ds in pairs if r == 0 else reversed(pairs):
                        rates[name].append(loader_rate(ds, 1, args.clips))
                b, d = (statistics.median(rates[k]) for k in ("baseline", "device"))
                print(f"| {modality} | {b:.1f} | {d:.1f} | {d / b:.2f} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}. A GPU consuming G clips/s needs about "
          "G / (per-worker clips/s) workers; with crop_resize_on=device the GPU also resizes the crops.")


if __name__ == "__main__":
    main()
