"""Video files -> frame store: RGB JPEGs, quantised flow JPEGs, metadata (docs/design.md, Data flow).

``extract_video`` turns one video into ``<out>/<video_id>/img_00001.jpg ...``,
``flow_x_00001.jpg ...``, ``flow_y_00001.jpg ...`` (one fewer flow frame than RGB frame) and
writes ``meta.json`` last, atomically (``tstam.data.store.write_meta``): a folder without it is
unfinished, and ``extract_many`` redoes it from scratch. ``extract_many`` runs videos in parallel
worker processes, keeps to one shard of the list (``shard_of``: a hash of the video id, so each
video lands in exactly one shard on every machine), skips finished videos, and reports every
video that failed while the others finish. The worker processes are in ``tstam.extract.workers``:
whole videos per worker, or (``tvl1_torch`` with a ``device``) decoding in the workers and flow
in batches across videos on the device, e.g. a GPU.

Threads: each worker process runs OpenCV and torch on one thread and decodes with one FFmpeg
thread; parallelism comes from running one video per core, which scales with the number of cores,
while OpenCV's TV-L1 gains little from its own threads (``benchmarks/bench_flow.py`` measures both).
The video id is the file stem (UCF101 / MMAction2 convention), or the folder and the stem where
stems repeat (``tstam.data.records.video_ids``).
"""
from .many import ExtractReport, extract_many
from .sources import collect_sources, parse_shard, parse_size, select_shard, shard_of, source_ids
from .video import decode_and_write_rgb, extract_video, extraction_settings

__all__ = [
    "ExtractReport", "source_ids", "shard_of", "select_shard", "collect_sources", "extract_video", "extract_many",
    "decode_and_write_rgb", "extraction_settings", "parse_shard", "parse_size",
]
