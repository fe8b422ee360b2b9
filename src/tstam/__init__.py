"""tstam: T-STAM two-stream spatio-temporal attention for action recognition."""
__version__ = "0.1.0"
