"""OCI images without a registry or a builder daemon: a root filesystem as one layer.

containerd imports an OCI image layout archive (`ctr -n k8s.io images import`), so a
directory tree becomes an image with nothing more than tar and sha256: one
uncompressed layer, an image config (entrypoint, user, env), a manifest and an index
naming the image's reference. Pods use such images with `imagePullPolicy: Never`.

`static_program(name, source)` builds the small programs those images hold (the pause
process, a test server) from Go source with the standard library only, statically
linked, cached by the hash of the source.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class ImageError(RuntimeError):
    """An image could not be made; the message says why."""


@dataclass(frozen=True)
class Image:
    """An image to build: `files` maps a path in the image to a file on this machine."""

    reference: str  # e.g. "localenv.test/pause:1"
    files: dict[str, Path]
    entrypoint: tuple[str, ...]
    user: str = "65532:65532"
    env: tuple[str, ...] = ("PATH=/usr/local/bin:/usr/bin:/bin",)
    labels: dict[str, str] = field(default_factory=dict)


def _layer(files: dict[str, Path]) -> bytes:
    """A deterministic tar of `files` (sorted, zero times, root-owned, parents made)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for target in sorted(files):
            parts = target.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            source = files[target]
            info = tarfile.TarInfo("/".join(parts))
            data = source.read_bytes()
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if os.access(source, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def build_archive(image: Image, archive: Path) -> Path:
    """Write `image` as an OCI image layout tar at `archive`; return it."""
    with tempfile.TemporaryDirectory(prefix="oci-") as temporary:
        layout = Path(temporary)
        (layout / "blobs" / "sha256").mkdir(parents=True)
        layer = _layer(image.files)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": list(image.entrypoint),
                "User": image.user,
                "Env": list(image.env),
                "Labels": dict(image.labels),
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"],
            },
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _blob(layout, _json(config), OCI_CONFIG),
            "layers": [_blob(layout, layer, OCI_LAYER)],
        }
        descriptor = _blob(layout, _json(manifest), OCI_MANIFEST)
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": image.reference}
        (layout / "index.json").write_bytes(
            _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})
        )
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w") as tar:
            for path in sorted(layout.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    return archive


def static_program(name: str, source: str, cache: Path) -> Path:
    """`source` (a Go main package, standard library only) built as a static binary,
    cached under `cache` by the hash of the source."""
    key = hashlib.sha256(source.encode()).hexdigest()[:12]
    binary = cache / f"{name}-{key}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ImageError(f"Go is needed to build {name}; install it and run again")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as temporary:
        main = Path(temporary) / "main.go"
        main.write_text(source)
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
        result = subprocess.run(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), str(main)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise ImageError(f"building {name} failed: {result.stderr[-2000:]}")
    return binary


PAUSE_SOURCE = """package main

// The pod sandbox's process: it holds the pod's namespaces and waits for a signal.
import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
}
"""

ECHO_SOURCE = """package main

// A test container: answers GET / with its pod's name and address on :8080.
import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\\n", os.Getenv("POD_NAME"), os.Getenv("POD_IP"))
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"""
