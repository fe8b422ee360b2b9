"""Data: annotations, frame store, TSN sampling, augmentation, datasets and loaders (docs/design.md, Data flow)."""
from tstam.data.check import Problem, check_records, fill_num_frames, raise_on_problems
from tstam.data.config import DataConfig
from tstam.data.datasets import FrameDataset, VideoDataset
from tstam.data.frames import FrameLayout, read_flow_frames, read_rgb_frames
from tstam.data.loader import ClipLoader, ShardSampler, build_loader
from tstam.data.records import AnnotationError, Annotations, SplitSet, VideoRecord, frame_dir, video_path
from tstam.data.splits import (
    load_annotations,
    parse_class_index,
    parse_csv,
    parse_hmdb51,
    parse_rawframe_list,
    parse_ucf101,
)

__all__ = [
    "VideoRecord", "SplitSet", "Annotations", "AnnotationError", "frame_dir", "video_path",
    "parse_ucf101", "parse_hmdb51", "parse_rawframe_list", "parse_csv", "parse_class_index", "load_annotations",
    "Problem", "check_records", "fill_num_frames", "raise_on_problems",
    "FrameLayout", "read_rgb_frames", "read_flow_frames",
    "DataConfig", "FrameDataset", "VideoDataset",
    "ShardSampler", "ClipLoader", "build_loader",
]
