"""OCI archives made without a registry: what containerd reads from them must add up."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from localenv.images import OCI_MANIFEST, Image, build_archive

pytestmark = pytest.mark.unit


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def blob(files: dict[str, bytes], descriptor: dict[str, Any]) -> bytes:
    data = files["blobs/sha256/" + descriptor["digest"].removeprefix("sha256:")]
    assert len(data) == descriptor["size"]
    assert hashlib.sha256(data).hexdigest() == descriptor["digest"].removeprefix("sha256:")
    return data


def test_the_index_names_the_image_and_every_digest_matches_its_blob(tmp_path: Path) -> None:
    program = tmp_path / "server"
    program.write_bytes(b"\x7fELF not really")
    program.chmod(0o755)
    image = Image("localenv.test/echo:1", {"bin/echo": program}, ("/bin/echo",))
    files = members(build_archive(image, tmp_path / "echo.tar"))

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    [descriptor] = json.loads(files["index.json"])["manifests"]
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == image.reference
    assert descriptor["mediaType"] == OCI_MANIFEST
    manifest = json.loads(blob(files, descriptor))
    config = json.loads(blob(files, manifest["config"]))
    assert config["config"]["Entrypoint"] == ["/bin/echo"]
    assert config["config"]["User"] == "65532:65532"
    [layer_descriptor] = manifest["layers"]
    layer = blob(files, layer_descriptor)
    # An uncompressed layer: its diff_id is its own digest.
    assert config["rootfs"]["diff_ids"] == [layer_descriptor["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        entries = {m.name: m for m in tar.getmembers()}
    assert set(entries) == {"bin", "bin/echo"}
    assert entries["bin"].isdir()
    assert entries["bin/echo"].mode == 0o755
    assert entries["bin/echo"].uid == 0


def test_the_same_files_make_the_same_image(tmp_path: Path) -> None:
    """A rebuild of unchanged inputs gives the same digest (times and owners fixed)."""
    source = tmp_path / "pause"
    source.write_bytes(b"pause")

    def digest(name: str) -> str:
        image = Image("localenv.test/pause:1", {"pause": source}, ("/pause",))
        index = members(build_archive(image, tmp_path / name))["index.json"]
        return str(json.loads(index)["manifests"][0]["digest"])

    first = digest("a.tar")
    source.touch()  # a new modification time changes nothing
    assert digest("b.tar") == first
