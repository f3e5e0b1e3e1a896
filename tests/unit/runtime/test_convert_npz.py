"""The .npz files from the training environment (references, evaluation sets) are read
without pickle and within a bound on what they unpack to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlmodel_runtime.convert import sampling
from mlmodel_runtime.convert.errors import UsageError
from mlmodel_runtime.convert.schema import InputSchema

pytestmark = pytest.mark.unit

SCHEMA = InputSchema(n_features=4)


def test_a_file_that_unpacks_past_the_bound_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "holdout.npz"
    np.savez_compressed(path, inputs=np.zeros((2000, 4)), target=np.zeros(2000))
    assert path.stat().st_size < 10_000  # zeros compress to almost nothing
    monkeypatch.setattr(sampling, "NPZ_MAX_UNPACKED", 50_000)
    with pytest.raises(UsageError, match=r"unpacks to \d+ bytes, over the limit of 50000"):
        sampling.read_labelled(path, SCHEMA)


def test_object_arrays_and_non_archives_are_refused(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npz"
    np.savez(objects, inputs=np.zeros((3, 4)), target=np.array([1, "a", None], dtype=object))
    with pytest.raises(UsageError, match="without objects"):
        sampling.read_labelled(objects, SCHEMA)
    plain = tmp_path / "plain.npz"
    np.save(tmp_path / "plain.npy", np.zeros((3, 4)))
    (tmp_path / "plain.npy").rename(plain)
    with pytest.raises(UsageError, match="cannot read evaluation set"):
        sampling.read_labelled(plain, SCHEMA)


def test_a_labelled_set_needs_one_target_per_row(tmp_path: Path) -> None:
    path = tmp_path / "holdout.npz"
    np.savez(path, inputs=np.zeros((3, 4)), target=np.zeros(2))
    with pytest.raises(UsageError, match="target has 2 rows, inputs 3"):
        sampling.read_labelled(path, SCHEMA)
    np.savez(path, inputs=np.zeros((3, 4)))
    with pytest.raises(UsageError, match="no 'target' array"):
        sampling.read_labelled(path, SCHEMA)
