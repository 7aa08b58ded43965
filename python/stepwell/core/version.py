"""stepwell's version: the one place it is written (``sw.__version__`` re-exports it)."""

__version__ = "0.1.0"
