"""The cache key of a conversion and the decision to reuse one (`convert/reuse.py`), pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlmodel_runtime.convert.reuse import (
    Convert,
    Entry,
    Key,
    Miss,
    Reuse,
    Stored,
    Unreadable,
    decide,
    evict,
    key_for,
)
from mlmodel_runtime.modeldir import ModelMetadata

pytestmark = pytest.mark.unit

SOURCE = "ab" * 32
VERSIONS = {"scikit-learn": "1.9.1", "skl2onnx": "1.20.0", "mlmodel-runtime": "0.1.0"}
OPTIONS: dict[str, object] = {
    "trust_types": ("b.B", "a.A"),
    "parity_samples": 256,
    "rtol": 1e-4,
    "atol": 1e-5,
    "reference_sha256": None,
}


def key(**changes: Any) -> Key:
    arguments: dict[str, Any] = {
        "source_sha256": SOURCE,
        "fmt": "skops",
        "versions": VERSIONS,
        "options": OPTIONS,
    }
    arguments.update(changes)
    return key_for(**arguments)


def entry_for(wanted: Key, **changes: Any) -> Entry:
    """The entry a passed conversion under `wanted` leaves, with `changes`."""
    fields: dict[str, Any] = {
        "material": wanted.material(),
        "recorded_model_sha256": "cd" * 32,
        "model_sha256": "cd" * 32,
        "report": {"parity": {"passed": True, "rows": 32}},
        "metadata": ModelMetadata(inputs=(), outputs=(), model_sha256="cd" * 32),
    }
    fields.update(changes)
    return Entry(**fields)


def test_the_key_ignores_the_order_of_versions_options_and_trusted_types() -> None:
    shuffled = key(
        versions=dict(reversed(list(VERSIONS.items()))),
        options={**dict(reversed(list(OPTIONS.items()))), "trust_types": ["a.A", "b.B"]},
    )
    assert shuffled == key()
    assert shuffled.digest == key().digest


def test_an_option_not_given_is_the_same_as_an_option_absent() -> None:
    assert key(options={k: v for k, v in OPTIONS.items() if v is not None}) == key()


def test_a_tolerance_written_another_way_is_the_same_tolerance() -> None:
    assert key(options={**OPTIONS, "rtol": 0.0001}).digest == key().digest


@pytest.mark.parametrize(
    "changes",
    [
        {"source_sha256": "ef" * 32},
        {"fmt": "sklearn"},
        {"versions": {**VERSIONS, "scikit-learn": "1.9.2"}},
        {"versions": {**VERSIONS, "mlmodel-runtime-code": "0123456789abcdef"}},
        {"options": {**OPTIONS, "rtol": 1e-3}},
        {"options": {**OPTIONS, "parity_samples": 32}},
        {"options": {**OPTIONS, "trust_types": ("a.A",)}},
        {"options": {**OPTIONS, "reference_sha256": "12" * 32}},
        {"options": {**OPTIONS, "allow_version_mismatch": True}},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_anything_that_changes_what_is_converted_or_proven_is_another_key(
    changes: dict[str, Any],
) -> None:
    assert key(**changes).digest != key().digest


def test_the_digest_is_stable_across_runs() -> None:
    # The entry's directory name: the same material must name the same entry next time.
    assert (
        key().digest
        == key_for(
            source_sha256=SOURCE.upper(), fmt="skops", versions=VERSIONS, options=OPTIONS
        ).digest
    )
    assert len(key().digest) == 64


GOOD = entry_for(key())


@pytest.mark.parametrize(
    ("found", "unpickles", "expected"),
    [
        (GOOD, False, Reuse(GOOD)),
        (None, False, Convert(Miss.NO_ENTRY)),
        (GOOD, True, Convert(Miss.UNPICKLES)),
        (Unreadable("KeyError reading x"), False, Convert(Miss.UNREADABLE, "KeyError reading x")),
        (entry_for(key(fmt="sklearn")), False, Convert(Miss.OTHER_KEY)),
        (replace(GOOD, model_sha256="00" * 32), False, Convert(Miss.DAMAGED)),
        (replace(GOOD, recorded_model_sha256="", model_sha256=""), False, Convert(Miss.DAMAGED)),
        (replace(GOOD, report={"parity": {"passed": False}}), False, Convert(Miss.PARITY)),
        (replace(GOOD, report={}), False, Convert(Miss.PARITY)),
    ],
    ids=[
        "same-key-intact-passed",
        "nothing-stored",
        "unpickling-format",
        "unreadable-entry",
        "entry-of-another-key",
        "model-edited-in-the-cache",
        "no-recorded-digest",
        "recorded-parity-failed",
        "no-recorded-parity",
    ],
)
def test_a_conversion_is_reused_only_when_its_entry_proves_itself(
    found: Entry | Unreadable | None, unpickles: bool, expected: Reuse | Convert
) -> None:
    assert decide(key(), found, unpickles=unpickles) == expected


def test_a_refusal_says_why_and_what_was_found() -> None:
    refused = decide(key(), Unreadable("KeyError reading x"), unpickles=False)
    assert isinstance(refused, Convert)
    assert refused.reason == "the cached entry is unreadable: KeyError reading x"
    assert Convert(Miss.NO_ENTRY).reason == Miss.NO_ENTRY.value


@pytest.mark.parametrize(("miss", "stored"), [(m, m is not Miss.UNPICKLES) for m in Miss])
def test_every_new_conversion_is_stored_except_one_that_unpickles(miss: Miss, stored: bool) -> None:
    assert Convert(miss).may_store is stored


@pytest.mark.parametrize(
    ("entries", "max_bytes", "keep", "doomed"),
    [
        ([Stored("a", 5, 1.0), Stored("b", 5, 2.0), Stored("c", 5, 3.0)], 10, "c", ["a"]),
        ([Stored("a", 5, 1.0), Stored("b", 5, 2.0), Stored("c", 5, 3.0)], 15, "c", []),
        ([Stored("a", 5, 3.0), Stored("b", 5, 1.0), Stored("c", 5, 2.0)], 5, "a", ["b", "c"]),
        ([Stored("new", 50, 1.0), Stored("old", 5, 2.0)], 10, "new", ["old"]),
    ],
    ids=["least-recently-used-first", "all-fit", "until-it-fits", "never-the-one-kept"],
)
def test_eviction_takes_the_least_recently_used_entries_until_the_rest_fit(
    entries: list[Stored], max_bytes: int, keep: str, doomed: list[str]
) -> None:
    assert evict(entries, max_bytes=max_bytes, keep=keep) == doomed
