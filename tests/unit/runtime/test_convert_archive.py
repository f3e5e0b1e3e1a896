"""A skops archive is bounded in what it unpacks to before skops reads it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mlmodel_runtime.convert import archive
from mlmodel_runtime.convert.archive import check_archive
from mlmodel_runtime.convert.errors import IntegrityError

pytestmark = pytest.mark.unit
MIB = 1 << 20


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return path


def test_an_ordinary_archive_passes(tmp_path: Path) -> None:
    path = _zip(tmp_path / "ok.skops", {"schema.json": b"{}", "1.npy": bytes(range(256)) * 64})
    check_archive(path, max_unpacked=1 * MIB)


def test_members_and_their_total_are_bounded(tmp_path: Path) -> None:
    path = _zip(tmp_path / "big.skops", {"a.npy": b"x" * 600_000, "b.npy": b"y" * 600_000})
    with pytest.raises(IntegrityError, match=r"'a\.npy' unpacks to 600000 bytes"):
        check_archive(path, max_unpacked=500_000)
    with pytest.raises(IntegrityError, match="unpacks to more than 1000000 bytes"):
        check_archive(path, max_unpacked=1_000_000)


def test_a_high_compression_ratio_is_a_zip_bomb(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.skops", {"z.npy": bytes(4 * MIB)}, zipfile.ZIP_DEFLATED)
    with pytest.raises(IntegrityError, match="zip bomb"):
        check_archive(path, max_unpacked=1 << 30)
    # Small members may compress well: schema.json often does.
    small = _zip(tmp_path / "small.skops", {"schema.json": bytes(MIB)}, zipfile.ZIP_DEFLATED)
    check_archive(small, max_unpacked=1 << 30)


def test_a_member_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path / "liar.skops", {"a.npy": b"x" * 10_000}, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    # Declare 100 bytes in the central directory and the local header.
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = data.find(signature)
        data[at + offset : at + offset + 4] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"corrupt|declares"):
        check_archive(path, max_unpacked=1 * MIB)


def test_too_many_members_or_a_huge_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _zip(tmp_path / "many.skops", {f"{i}.npy": b"" for i in range(50)})
    monkeypatch.setattr(archive, "MAX_MEMBERS", 10)
    with pytest.raises(IntegrityError, match="50 members"):
        check_archive(path, max_unpacked=MIB)
    monkeypatch.setattr(archive, "MAX_DIRECTORY_BYTES", 1000)
    with pytest.raises(IntegrityError, match="directory is"):
        check_archive(path, max_unpacked=MIB)


def test_not_a_zip_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.skops"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(IntegrityError, match="corrupt or truncated"):
        check_archive(path, max_unpacked=MIB)
