"""`--format sklearn`: a scikit-learn model saved with pickle or joblib.

Unpickling runs whatever code the file names, so a file that anyone else can
write is a way into the pod: this format is refused before anything is
downloaded unless --allow-unsafe-pickle is given (`formats.refuse_before_fetch`,
and again in `formats.load`). joblib reads plain pickles and its own compressed
containers alike. The rest is the scikit-learn core (`formats/estimator.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlmodel_runtime.convert.formats import Format, LoadOptions, Log, sniff
from mlmodel_runtime.convert.formats.estimator import (
    EstimatorModel,
    library_errors,
    open_estimator,
)


class SklearnFormat(Format):
    name = "sklearn"
    doc = (
        "scikit-learn saved with pickle or joblib; runs code while loading (--allow-unsafe-pickle)"
    )
    file_kind = "pickle/joblib"
    unpickles = True

    def recognises(self, head: bytes) -> bool:
        # Protocol 0 and 1 pickles have no magic: they are loaded, not recognised.
        return sniff(head) == "pickle"

    def load(self, path: Path, options: LoadOptions, log: Log) -> EstimatorModel:
        return open_estimator(lambda: _unpickle(path), options, log)


def _unpickle(path: Path) -> Any:
    from mlmodel_runtime.convert import gcpause

    with gcpause.while_importing():
        # scikit-learn itself before the file: what unpickling imports after it is small.
        import joblib
        import sklearn  # noqa: F401

    with library_errors("unpickle the file"):
        return joblib.load(path)
