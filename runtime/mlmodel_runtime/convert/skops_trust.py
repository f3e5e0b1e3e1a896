"""Which types a skops file may contain: an allow-list, and types never trusted.

Called by `formats/skops.py`. skops builds objects from a file by *calling* the types the
file names, with arguments the file provides, and refuses any type it does not
trust. Its defaults are narrow (scikit-learn's estimators, NumPy dtypes and
ufuncs, some loss objects), while fitted models also hold internal helpers: a
tree's node storage, a neighbors index and its distance metric, an optimizer's
state, kernels, calibrators. Those are listed here, by name or by family (the
subclasses of one base class in one module). Nothing is trusted for living
under sklearn, numpy or scipy: those packages also ship types that open, map or
write files, and `numpy.memmap(path, "uint8", "r")` in a model's coefficients
would make the served model answer with the bytes of any file the container
can read.

`--trust-type NAME` stays the explicit opt-in for anything else, except for the
types that can read or write files, start processes, open connections or run
code: those are refused whatever the flags say. Several helper types index
memory with numbers from the file; `structure.py` checks those numbers after
loading.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from functools import cache
from typing import Any

from mlmodel_runtime.convert.errors import UnsafeFormatError

# (module, type names) of helpers that fitted scikit-learn models hold.
HELPER_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sklearn.tree._tree", ("Tree",)),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", ("TreePredictor",)),
    ("sklearn.ensemble._hist_gradient_boosting.binning", ("_BinMapper",)),
    ("sklearn.neighbors._kd_tree", ("KDTree",)),
    ("sklearn.neighbors._ball_tree", ("BallTree",)),
    ("sklearn.neural_network._stochastic_optimizers", ("SGDOptimizer", "AdamOptimizer")),
    ("sklearn.utils._bunch", ("Bunch",)),
    ("sklearn.calibration", ("_CalibratedClassifier", "_SigmoidCalibration")),
    ("sklearn.gaussian_process._gpc", ("_BinaryGaussianProcessClassifierLaplace",)),
    ("sklearn._loss.link", ("Interval",)),
    ("numpy", ("dtype",)),
)
# (module, base class): every class of that module deriving from the base.
HELPER_FAMILIES: tuple[tuple[str, str], ...] = (
    ("sklearn._loss.loss", "BaseLoss"),
    ("sklearn._loss.link", "BaseLink"),
    ("sklearn.gaussian_process.kernels", "Kernel"),
    ("sklearn.metrics._dist_metrics", "DistanceMetric"),
)
# Members of the families above that hold a Python callable from the file.
EXCLUDED = frozenset(
    {
        "sklearn.metrics._dist_metrics.PyFuncDistance64",
        "sklearn.metrics._dist_metrics.PyFuncDistance32",
    }
)

# Never trusted, not even with --trust-type: whole modules (and their submodules)...
NEVER_TRUSTED_MODULES = (
    "numpy.lib.npyio", "numpy.lib._npyio_impl", "numpy.lib._datasource", "numpy.lib.format",
    "numpy.lib._format_impl", "numpy._core.memmap", "numpy.core.memmap", "numpy.ctypeslib",
    "numpy.f2py", "numpy.testing", "numpy.distutils", "scipy.io", "sklearn.datasets",
    "sklearn.utils._testing", "pandas.io", "joblib", "pickle", "_pickle", "copyreg", "marshal",
    "shelve", "dbm", "io", "_io", "os", "posix", "nt", "pathlib", "shutil", "tempfile", "glob",
    "fileinput", "mmap", "subprocess", "_posixsubprocess", "multiprocessing", "threading",
    "_thread", "concurrent", "asyncio", "socket", "_socket", "ssl", "http", "urllib", "ftplib",
    "smtplib", "webbrowser", "requests", "aiohttp", "fsspec", "s3fs", "gcsfs", "botocore",
    "boto3", "sys", "importlib", "runpy", "code", "codeop", "pdb", "ctypes", "_ctypes",
    "signal", "resource", "sqlite3", "zipfile", "tarfile", "gzip", "bz2", "lzma", "logging",
    "inspect", "gc",
)  # fmt: skip
# ... and single names, compared as objects, so another spelling of the same
# object (numpy._core.memmap.memmap for numpy.memmap) is refused as well.
NEVER_TRUSTED_NAMES = (
    "builtins.open", "builtins.exec", "builtins.eval", "builtins.compile",
    "builtins.__import__", "builtins.getattr", "builtins.setattr", "builtins.delattr",
    "builtins.globals", "builtins.locals", "builtins.vars", "builtins.input",
    "builtins.breakpoint", "operator.attrgetter", "operator.methodcaller", "types.FunctionType",
    "types.CodeType", "types.MethodType", "types.ModuleType", "numpy.memmap", "numpy.load",
    "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.loadtxt",
    "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.ndarray.tofile",
    "numpy.ndarray.dump", "numpy.DataSource",
)  # fmt: skip


def type_name(cls: type) -> str:
    """The name skops gives a type: its module, a dot, its name."""
    return f"{cls.__module__}.{cls.__name__}"


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:  # a private module moved in another scikit-learn version
        return None


@cache
def allowed_type_names() -> frozenset[str]:
    """The helper types trusted on top of skops's own defaults, and the boosting
    families' wrappers with what they hold (`families.py`)."""
    from mlmodel_runtime.convert import families

    names: set[str] = set(families.trusted_type_names())
    for module_name, attrs in HELPER_TYPES:
        module = _module(module_name)
        for attr in attrs:
            cls = getattr(module, attr, None)
            if isinstance(cls, type):
                names.add(type_name(cls))
    for module_name, base_name in HELPER_FAMILIES:
        module = _module(module_name)
        base = getattr(module, base_name, None)
        if not isinstance(base, type):
            continue
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, base) and cls.__module__ == module_name:
                names.add(type_name(cls))
    return frozenset(names - EXCLUDED)


def _in_modules(module_name: str) -> bool:
    return any(module_name == m or module_name.startswith(f"{m}.") for m in NEVER_TRUSTED_MODULES)


def resolve(name: str) -> Any:
    """The object a dotted name refers to (importing its module), or None."""
    module_name, _, attr = name.rpartition(".")
    while module_name:
        try:
            target: Any = importlib.import_module(module_name)
            break
        except ImportError:
            # Nested names (a method, numpy.dtypes.Float64DType) live one level up.
            module_name, _, outer = module_name.rpartition(".")
            attr = f"{outer}.{attr}"
    else:
        return None
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


@cache
def _never_trusted_objects() -> tuple[Any, ...]:
    return tuple(o for o in (resolve(n) for n in NEVER_TRUSTED_NAMES) if o is not None)


def never_trusted_by_name(name: str) -> bool:
    """Judged from the name alone, importing nothing (for names an untrusted file wrote)."""
    module_name = name.rpartition(".")[0]
    return name in NEVER_TRUSTED_NAMES or _in_modules(name) or _in_modules(module_name)


def never_trusted(name: str) -> bool:
    """By name, and by what the name resolves to (for names the user passed)."""
    if never_trusted_by_name(name):
        return True
    target = resolve(name)
    if target is None:
        return False
    if any(target is o for o in _never_trusted_objects()):
        return True
    return _in_modules(str(getattr(target, "__module__", None) or ""))


def check(untrusted: Iterable[str], user_trust: Iterable[str]) -> list[str]:
    """The names to pass to skops as trusted; raise UnsafeFormatError naming what is refused.

    `untrusted` is what skops would refuse by default (get_untrusted_types).
    """
    untrusted = sorted(set(untrusted))
    chosen = set(user_trust)
    never = [n for n in untrusted if never_trusted_by_name(n) or (n in chosen and never_trusted(n))]
    if never:
        raise UnsafeFormatError(
            f"the skops file contains {', '.join(never)}, which can read or write files, "
            "start processes, open connections or run code; such types are never trusted, "
            "not even with --trust-type"
        )
    allowed = allowed_type_names()
    refused = [n for n in untrusted if n not in allowed and n not in chosen]
    if refused:
        raise UnsafeFormatError(
            f"the skops file contains types this runtime does not trust: {', '.join(refused)}. "
            "Trusted are scikit-learn's estimators and the helper types fitted models hold "
            "(docs/convert.md). If you reviewed these, pass --trust-type NAME for each"
        )
    return untrusted
