"""`--format skops`: a scikit-learn model saved with skops.io.dump (recommended).

A skops file is a zip archive that names the types to build and the arguments
to build them with. Before anything predicts, in this order: what the archive
unpacks to is bounded (`archive.py`: skops reads members whole, before its own
type audit); every type it names must be trusted (`skops_trust.py`: skops's
defaults, the helper types fitted models hold, and --trust-type names, never
file- or code-capable types); then skops's safe loader builds the estimator and
the indices inside trusted helpers that compiled code follows are checked
(`structure.py`). The rest is the scikit-learn core (`formats/estimator.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlmodel_runtime.convert.errors import IntegrityError
from mlmodel_runtime.convert.formats import Format, LoadOptions, Log, sniff
from mlmodel_runtime.convert.formats.estimator import (
    EstimatorModel,
    library_errors,
    open_estimator,
)
from mlmodel_runtime.convert.sanitize import describe


class SkopsFormat(Format):
    name = "skops"
    doc = "scikit-learn saved with skops.io.dump; loaded with skops's safe loader (recommended)"
    file_kind = "skops"

    def recognises(self, head: bytes) -> bool:
        return sniff(head) == "zip"

    def load(self, path: Path, options: LoadOptions, log: Log) -> EstimatorModel:
        with path.open("rb") as handle:
            if not self.recognises(handle.read(4)):
                raise IntegrityError(
                    "not a skops file: it is not a zip archive (corrupt or wrong file?)"
                )
        return open_estimator(lambda: _read(path, options), options, log)


def _read(path: Path, options: LoadOptions) -> Any:
    from mlmodel_runtime.convert import (
        archive,
        booster_structure,
        gcpause,
        skops_trust,
        structure,
    )

    with gcpause.while_importing():
        import skops.io

    archive.check_archive(path, max_unpacked=options.max_unpacked_bytes)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # zipfile, json and skops errors alike
        raise IntegrityError(
            f"not a readable skops file (corrupt or truncated?): {describe(exc)}"
        ) from exc
    trusted = skops_trust.check(untrusted, options.trust)
    if ".".join(booster_structure.LIGHTGBM_BOOSTER) in trusted:
        booster_structure.check_skops_schema(archive.read_schema(path))
    with library_errors("load skops file"):
        estimator = skops.io.load(path, trusted=trusted)
    structure.check_estimator(estimator)
    return estimator
