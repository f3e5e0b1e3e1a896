"""The conversion cache directory (`convert/cache.py`): what it stores, what it refuses to
hand back, and how it stays bounded. Files only, no conversion."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlmodel_runtime.convert import cache
from mlmodel_runtime.convert.reuse import Convert, Entry, Miss, Reuse, Unreadable, decide, key_for
from mlmodel_runtime.modeldir import ModelMetadata, TensorSpec, read_metadata

pytestmark = pytest.mark.unit

MODEL = b"\x08\x07 not really onnx, bytes all the same"
REPORT = {"estimator": "sklearn.linear_model.LogisticRegression", "parity": {"passed": True}}
KEY = key_for(
    source_sha256="ab" * 32, fmt="skops", versions={"skl2onnx": "1.20.0"}, options={"rtol": 1e-4}
)


def metadata_bytes(model: bytes = MODEL) -> bytes:
    metadata = ModelMetadata(
        inputs=(TensorSpec("input", "FP32", (-1, 4)),),
        outputs=(TensorSpec("label", "INT64", (-1,)),),
        task="classification",
        source={"uri": "s3://models/iris/v1/model.skops", "format": "skops"},
        model_sha256=hashlib.sha256(model).hexdigest(),
        parity={"passed": True, "rows": 32},
        timings={"load": 1.5},
    )
    return json.dumps(metadata.to_json()).encode()


def store(root: Path, *, max_bytes: int = cache.DEFAULT_MAX_BYTES) -> cache.StoreOutcome:
    files = {"model.onnx": MODEL, "metadata.json": metadata_bytes()}
    return cache.store(root, KEY, files=files, report=REPORT, max_bytes=max_bytes)


def test_a_stored_conversion_is_found_whole_and_reusable(tmp_path: Path) -> None:
    assert store(tmp_path) == cache.StoreOutcome(True)
    found = cache.lookup(tmp_path, KEY)
    assert isinstance(found, Entry)
    assert found.files["model.onnx"] == MODEL
    assert found.report == REPORT
    assert decide(KEY, found, unpickles=False) == Reuse(found)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.digest]  # no temporary left


def test_restoring_writes_the_model_and_metadata_with_this_runs_source_and_timings(
    tmp_path: Path,
) -> None:
    store(tmp_path / "cache")
    found = cache.lookup(tmp_path / "cache", KEY)
    assert isinstance(found, Entry)
    out = tmp_path / "models"
    out.mkdir()
    source = {"uri": "s3://models/iris/v2/model.skops", "format": "skops", "sha256": "ab" * 32}
    cache.restore(found, out, source=source, timings={"fetch": 0.01, "cache": 0.02})
    assert (out / "model.onnx").read_bytes() == MODEL
    written = read_metadata(out)
    assert written.source == source
    assert written.timings == {"fetch": 0.01, "cache": 0.02}
    assert written.parity == {"passed": True, "rows": 32}  # the proof of these bytes
    assert not (out / "baseline.json").exists()


def test_nothing_stored_is_no_entry(tmp_path: Path) -> None:
    assert cache.lookup(tmp_path / "absent", KEY) is None
    assert decide(KEY, cache.lookup(tmp_path, KEY), unpickles=False) == Convert(Miss.NO_ENTRY)


def test_a_model_edited_in_the_cache_is_not_reused(tmp_path: Path) -> None:
    store(tmp_path)
    (tmp_path / KEY.digest / "model.onnx").write_bytes(MODEL + b"!")
    assert decide(KEY, cache.lookup(tmp_path, KEY), unpickles=False) == Convert(Miss.DAMAGED)


@pytest.mark.parametrize(
    "files",
    [["model.onnx", "metadata.json", "../../etc/passwd"], ["metadata.json"], "model.onnx"],
    ids=["a-path-outside", "no-model", "not-a-list"],
)
def test_an_entry_listing_files_it_may_not_hold_is_unreadable(
    tmp_path: Path, files: object
) -> None:
    store(tmp_path)
    entry_file = tmp_path / KEY.digest / cache.ENTRY_FILE
    recorded = json.loads(entry_file.read_text())
    entry_file.write_text(json.dumps({**recorded, "files": files}))
    assert isinstance(cache.lookup(tmp_path, KEY), Unreadable)


def test_a_torn_entry_is_unreadable_not_an_error(tmp_path: Path) -> None:
    store(tmp_path)
    (tmp_path / KEY.digest / "metadata.json").unlink()
    found = cache.lookup(tmp_path, KEY)
    assert isinstance(found, Unreadable)
    assert "FileNotFoundError" in found.why


def test_an_entry_file_that_is_a_symbolic_link_is_unreadable(tmp_path: Path) -> None:
    store(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes(MODEL)
    model = tmp_path / "cache" / KEY.digest / "model.onnx"
    model.unlink()
    model.symlink_to(elsewhere)
    assert isinstance(cache.lookup(tmp_path / "cache", KEY), Unreadable)


def test_the_second_of_two_conversions_stored_at_once_is_dropped(tmp_path: Path) -> None:
    assert store(tmp_path).stored
    assert store(tmp_path) == cache.StoreOutcome(False, "another conversion stored it first")
    assert [p.name for p in tmp_path.iterdir()] == [KEY.digest]


def test_a_cache_that_cannot_be_written_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    outcome = store(blocker / "cache")
    assert not outcome.stored
    assert outcome.detail.startswith("cannot write")


def test_least_recently_used_entries_go_when_the_cache_is_over_its_bound(
    tmp_path: Path,
) -> None:
    old = tmp_path / ("0" * 64)
    old.mkdir()
    (old / "model.onnx").write_bytes(b"x" * 4096)
    os.utime(old, (1.0, 1.0))
    outcome = store(tmp_path, max_bytes=4096)
    assert outcome == cache.StoreOutcome(True, evicted=1)
    assert [p.name for p in tmp_path.iterdir()] == [KEY.digest]


def test_the_versions_name_the_converting_code_itself() -> None:
    versions = cache.versions()
    assert {"python", "mlmodel-runtime", "mlmodel-runtime-code", "skl2onnx"} <= set(versions)
    assert versions == cache.versions()
