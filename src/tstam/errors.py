"""tstam's own exceptions: the errors of a user's input, as opposed to bugs.

Every exception tstam raises about something the user gave it (an option or value, a config key,
a file, an output location) is a ``TstamError``, and its message is written for that user: it
names the value or file and says what would be valid. The ``tstam`` command prints such a message
in one line with exit status 2 (``tstam.cli``); any other exception escaping a command is a bug in
tstam (exit status 3, with the traceback), and so is a plain ``ValueError`` raised by tstam's own
code: those check arguments that tstam's callers, the command line included, must get right.

::

    TstamError                   base of every user error
    +-- InputError               a bad value or option (command line, API argument, request field)
    |   +-- ConfigError          a config key or value (YAML file, preset, key=value override)
    +-- BadFileError             an input file tstam cannot use: missing, unreadable, another format,
    |   |                        or contents that contradict each other or the run
    |   +-- VideoError           a video file (decoding, or writing one)
    |   +-- CheckpointError      a tstam checkpoint or export (reading, writing, fitting the run)
    |   +-- WeightsError         pretrained weights (ImageNet, TSN) for ``run.init_weights``
    |   +-- AnnotationError      a split, class or list file, or one of its lines
    |   +-- ScoreFileError       a score file (.npz) of tstam test / tstam fuse
    |   +-- FrameStoreError      a frame store: a video's folder, its JPEGs or its meta.json
    +-- OutputError              an output location that cannot be used (not writable, a file where
    |                            a folder is needed, a folder holding other results)
    +-- NonFiniteLossError       a training run diverged (NaN/inf loss); the last good checkpoint is
    |                            kept (exit status 1: what was done is still there)
    +-- ServeError               ``tstam serve`` refused a request of ``tstam.serve.client``

All but ``NonFiniteLossError`` are ``ValueError``\\ s too, as tstam's errors have always been, so
``except ValueError`` in Python code keeps catching them; ``NonFiniteLossError`` is a
``RuntimeError``. The classes are also importable from the modules that raise them
(``tstam.config.ConfigError``, ``tstam.video.VideoError``, ``tstam.checkpoint.CheckpointError``, ...).

An ``OSError`` naming a file (``FileNotFoundError``, ``PermissionError``, a full disk) is not
wrapped: it says what happened to which file, and the command line treats it as a user error too.
"""
from __future__ import annotations

__all__ = [
    "TstamError", "InputError", "ConfigError", "BadFileError", "VideoError", "CheckpointError", "WeightsError",
    "AnnotationError", "ScoreFileError", "FrameStoreError", "OutputError", "NonFiniteLossError", "ServeError",
]


class TstamError(Exception):
    """Base of every user error: the message is written for the user, naming what was wrong."""


class InputError(TstamError, ValueError):
    """A value or option is not valid; the message names it and what would be valid."""


class ConfigError(InputError):
    """A config key or value is not valid; the message names it and what would be valid."""


class BadFileError(TstamError, ValueError):
    """An input file cannot be used; the message starts with the file and says why."""


class VideoError(BadFileError):
    """A video could not be read or written; the message names the file and the problem."""


class CheckpointError(BadFileError):
    """A checkpoint cannot be written, read, or does not fit the run; the message says why."""


class WeightsError(BadFileError):
    """A weight file cannot be loaded into the model; the message lists every problem."""


class AnnotationError(BadFileError):
    """An annotation file or record is not valid; the message names the file, the line and the problem."""


class ScoreFileError(BadFileError):
    """A score file is missing, unreadable, or holds values a score file cannot hold."""


class FrameStoreError(BadFileError):
    """A frame store's folder, frame or metadata cannot be used; the message names it."""


class OutputError(TstamError, ValueError):
    """An output file or folder cannot be written or used; the message names it and why."""


class NonFiniteLossError(TstamError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ServeError(TstamError, ValueError):
    """The server refused a request; ``status`` is the HTTP status, the message its ``detail``."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
