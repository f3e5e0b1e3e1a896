"""The skops allow-list: helpers that fitted models hold, never file- or code-capable types."""

from __future__ import annotations

import pytest

from mlmodel_runtime.convert.errors import UnsafeFormatError
from mlmodel_runtime.convert.skops_trust import (
    allowed_type_names,
    check,
    never_trusted,
    resolve,
)

pytestmark = pytest.mark.unit


def test_the_helpers_of_real_models_are_allowed() -> None:
    allowed = allowed_type_names()
    for name in (
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn._loss.loss.HalfTweedieLossIdentity",
        "sklearn.gaussian_process.kernels.RBF",
        "numpy.dtype",
    ):
        assert name in allowed


def test_every_allowed_name_is_a_class_that_reads_no_files() -> None:
    for name in allowed_type_names():
        assert isinstance(resolve(name), type), name
        assert not never_trusted(name), name
    assert "sklearn.metrics._dist_metrics.PyFuncDistance64" not in allowed_type_names()


@pytest.mark.parametrize("name", [
    "numpy.memmap", "numpy._core.memmap.memmap", "numpy.load", "numpy.lib.npyio.NpzFile",
    "numpy.lib._datasource.DataSource", "scipy.io.FortranFile", "scipy.io._fortran.FortranFile",
    "builtins.open", "builtins.eval", "io.FileIO", "os.system", "subprocess.Popen",
    "operator.methodcaller", "numpy.ndarray.tofile", "joblib.load", "pathlib.Path",
])  # fmt: skip
def test_file_process_and_code_capable_types_are_never_trusted(name: str) -> None:
    assert never_trusted(name)
    with pytest.raises(UnsafeFormatError, match="never trusted"):
        check([name], user_trust=[name])


def test_other_types_need_trust_type() -> None:
    with pytest.raises(UnsafeFormatError, match=r"types\.SimpleNamespace") as refused:
        check(["sklearn.tree._tree.Tree", "types.SimpleNamespace"], user_trust=[])
    assert "Tree" not in str(refused.value)
    assert check(["types.SimpleNamespace"], user_trust=["types.SimpleNamespace"]) == [
        "types.SimpleNamespace"
    ]


def test_names_from_the_file_are_judged_without_importing_them() -> None:
    import sys

    assert "tabnanny" not in sys.modules  # a real module nothing else imports
    with pytest.raises(UnsafeFormatError, match="does not trust"):
        check(["tabnanny.NannyNag"], user_trust=[])
    assert "tabnanny" not in sys.modules
