"""Run the conversion from a fresh, empty working directory.

Called by `command.py` around `pipeline.convert`. Model files can name other
files by relative path (ONNX external data is resolved against the working
directory when a model is loaded from bytes); those are refused outright by
`onnx_safety.py`, and running from an empty directory created for this run
means that a path the checks did not anticipate resolves to nothing. Every
path argument is made absolute before entering it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def empty_working_directory() -> Iterator[Path]:
    """chdir into a new empty directory (0700) and back out; the directory is removed."""
    previous = os.getcwd()
    directory = Path(tempfile.mkdtemp(prefix="mlmodel-convert-cwd-"))
    # One level down: `..` from the working directory is then also a directory
    # created for this run, holding nothing but it.
    cwd = directory / "cwd"
    cwd.mkdir(mode=0o700)
    os.chdir(cwd)
    try:
        yield cwd
    finally:
        os.chdir(previous)
        shutil.rmtree(directory, ignore_errors=True)
