"""The format registry is the only list of model formats: the CRD, the `--format` choices
and the refusals of a file given as the wrong format all come from it.

(A format added by a test and converted end to end: tests/runtime/test_convert_formats.py.)
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmodel_operator import crddoc
from mlmodel_runtime.convert import command, formats
from mlmodel_runtime.convert.errors import IntegrityError, UnsafeFormatError, UsageError
from mlmodel_runtime.convert.formats import LoadOptions

pytestmark = pytest.mark.unit

SKOPS_HEAD = b"PK\x03\x04\x14\x00\x00\x00"
PICKLE_HEAD = pickle.dumps({"a": 1})[:8]
PROTOBUF_HEAD = b"\x08\x07\x12\x04skl2"


def crd_spec_model() -> dict[str, Any]:
    """The CRD's schema of `spec.model`, read from the file `kubectl apply` gets."""
    (version,) = yaml.safe_load(crddoc.CRD.read_text())["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    model: dict[str, Any] = spec["properties"]["model"]
    return model


def test_the_crd_offers_exactly_the_registered_formats() -> None:
    format_schema = crd_spec_model()["properties"]["format"]
    assert format_schema["enum"] == list(formats.REGISTRY)
    assert format_schema["default"] in formats.REGISTRY


def test_the_crd_asks_allow_unsafe_pickle_for_exactly_the_formats_that_unpickle() -> None:
    rules = [v["rule"] for v in crd_spec_model()["x-kubernetes-validations"]]
    named = {m for rule in rules for m in re.findall(r"self\.format [!=]= '([a-z]+)'", rule)}
    assert named == {f.name for f in formats.REGISTRY.values() if f.unpickles}


def test_format_choices_are_read_from_the_registry_when_the_parser_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(formats.REGISTRY, "extra", formats.REGISTRY["onnx"])
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--uri", "m", "--format", "extra", "--out", "o"])
    assert args.fmt == "extra"
    assert "{" + ",".join(formats.REGISTRY) + "}" in parser.format_usage()
    assert ",extra}" in parser.format_usage()


@pytest.mark.parametrize(
    ("declared", "head", "actually"),
    [
        ("skops", PICKLE_HEAD, "the file is a pickle/joblib file (--format sklearn)"),
        ("sklearn", SKOPS_HEAD, "the file is a skops file (--format skops)"),
        ("onnx", SKOPS_HEAD, "the file is a skops file (--format skops)"),
        ("onnx", PICKLE_HEAD, "the file is a pickle/joblib file (--format sklearn)"),
    ],
)  # fmt: skip
def test_a_file_another_format_recognises_is_refused_naming_that_format(
    declared: str, head: bytes, actually: str
) -> None:
    with pytest.raises(UsageError) as refused:
        formats.refuse_other_formats(formats.get(declared), head)
    assert refused.value.message == f"--format {declared}, but {actually}"


@pytest.mark.parametrize(
    ("declared", "head"),
    [("skops", SKOPS_HEAD), ("sklearn", PICKLE_HEAD), ("onnx", PROTOBUF_HEAD),
     ("skops", PROTOBUF_HEAD), ("sklearn", PROTOBUF_HEAD)],
)  # fmt: skip
def test_a_file_no_other_format_recognises_is_left_to_its_loader(
    declared: str, head: bytes
) -> None:
    formats.refuse_other_formats(formats.get(declared), head)


def test_an_unknown_format_is_a_usage_error_naming_the_registered_ones() -> None:
    with pytest.raises(UsageError, match="expected one of skops, sklearn, onnx, xgboost, lightgbm"):
        formats.get("catboost")


def test_pickle_is_refused_before_download_and_again_when_loading(tmp_path: Path) -> None:
    sklearn = formats.get("sklearn")
    assert sklearn.unpickles
    with pytest.raises(UnsafeFormatError, match="--allow-unsafe-pickle"):
        formats.refuse_before_fetch(sklearn, LoadOptions())
    formats.refuse_before_fetch(sklearn, LoadOptions(allow_unsafe_pickle=True))
    for fmt in formats.REGISTRY.values():
        if not fmt.unpickles:
            formats.refuse_before_fetch(fmt, LoadOptions())
    # Whoever calls formats.load gets the same refusal, before the file is opened.
    hostile = tmp_path / "model.pkl"
    hostile.write_bytes(pickle.dumps(print))
    with pytest.raises(UnsafeFormatError):
        formats.load(sklearn, hostile, LoadOptions(), lambda _: None)


def test_an_empty_file_is_an_integrity_error_whatever_the_format(tmp_path: Path) -> None:
    empty = tmp_path / "model"
    empty.write_bytes(b"")
    for fmt in formats.REGISTRY.values():
        options = LoadOptions(allow_unsafe_pickle=fmt.unpickles)
        with pytest.raises(IntegrityError, match="empty"):
            formats.load(fmt, empty, options, lambda _: None)
