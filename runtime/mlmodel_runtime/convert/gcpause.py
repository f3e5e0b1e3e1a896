"""Import a model library with the cyclic garbage collector paused.

Called where `convert` imports scikit-learn (all of it: skops lists every estimator it
trusts when it is imported), skl2onnx, onnxmltools, XGBoost or LightGBM. Those imports
create a few million long-lived objects and next to no garbage, and the collector's
passes over the growing heap while they run are wasted: pausing it took 0.15-0.17 s
off a conversion of an iris-size model or of a 100-tree forest on the 2-core reference
machine (`convert` in one process, medians of eight runs each, paused and not in
turn). Only the imports run paused; loading and converting the untrusted file, and
everything after, run with the collector as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def while_importing() -> Iterator[None]:
    """The collector off for the block, then back as it was (also after an error)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
