"""Helpers for the SAM 2 zero-shot abdominal CT segmentation study.

The notebooks in ``notebooks/`` are thin: every step of the study lives in one
of the modules of this package, named for what it does.
"""

__version__ = "0.1.0"
