"""``tstam serve``: a web page and an HTTP API for trained streams.

The page (``static/``: plain HTML, CSS and JS, nothing loaded from elsewhere) uploads a video or
picks a sample clip, follows the stages (upload, queue, decode, flow, model, pictures) and shows
the top-k classes fused and per stream, the attention pictures of ``tstam.visualize``, the
timings and the model's settings. The API answers the JSON of ``tstam predict --json``
(``Prediction.to_dict``, with its ``schema_version``); predictions are ``Recognizer.predict``.

The web stack (FastAPI, uvicorn, python-multipart, fastapi-offline) is the optional ``serve``
extra: ``config`` and ``samples`` import without it; ``app`` and ``server`` need it.

    from tstam.serve.app import create_app       # FastAPI app around a loaded Recognizer
    from tstam.serve.server import bind, serve   # what `tstam serve` runs
"""
from tstam.serve.config import INSTALL_HINT, ServeConfig, missing_serve_packages

__all__ = ["ServeConfig", "missing_serve_packages", "INSTALL_HINT"]
