"""Using a trained model: loading streams, predicting videos, batches of videos.

``tstam.load`` (``tstam.api``) is the short way in; ``tstam.visualize`` draws the attention and
``tstam.export`` writes ONNX and safetensors files; ``prepare_clip`` turns a video into an exported
model's input.
"""
from tstam.checkpoint import LoadedStream, load_stream, stream_metadata
from tstam.inference.batch import BatchResult, collect_videos, format_table, predict_many, write_json
from tstam.inference.clip import prepare_clip
from tstam.inference.recognizer import Prediction, Recognizer, StreamResult

__all__ = [
    "LoadedStream", "load_stream", "stream_metadata",
    "Prediction", "StreamResult", "Recognizer",
    "BatchResult", "collect_videos", "predict_many", "format_table", "write_json",
    "prepare_clip",
]
