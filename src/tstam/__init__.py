"""tstam: T-STAM two-stream spatio-temporal attention for action recognition."""
__version__ = "0.1.0"


def __getattr__(name: str):
    """``tstam.load`` (imported on first use, so ``import tstam`` stays light)."""
    if name == "load":
        from tstam.api import load

        return load
    raise AttributeError(f"module 'tstam' has no attribute {name!r}")
