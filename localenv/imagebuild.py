"""The project's images, built from the shipped Dockerfiles with buildah, cached by input.

`operator/Dockerfile` and `runtime/Dockerfile` are built as they are shipped; the only
difference from a user's `docker build` is `--build-arg BASE=` naming the stand-in base
(`localenv.baseimage`). Each image is tagged with the reference the manifests use
(`manifests/operator.yaml`: the operator's `image`, the runtime's
`MLMODEL_OPERATOR_RUNTIME_IMAGE`), so `kubectl apply -k manifests/` runs them unchanged,
and written as an archive that containerd imports (`ctr images import`).

The cache key hashes the base's reference, the Dockerfile and every file its `COPY`
steps take from the build context (their contents in the working tree, as git lists
them): an unchanged input set is built once, and a change to any of them rebuilds. The
build context holds only those files, so nothing untracked (a venv, caches, models)
reaches an image.

`python -m localenv.imagebuild` builds both (what `make images` runs, outside the
network sandbox); the real-node tests find the archives with `archive_for`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from localenv import baseimage
from localenv.buildah import Buildah, BuildahError, cache_root

REPO = Path(__file__).resolve().parent.parent
RECIPE = "1"  # bump when the build command below changes
OPERATOR_MANIFEST = REPO / "manifests" / "operator.yaml"


@dataclass(frozen=True)
class ProjectImage:
    name: str
    dockerfile: Path
    reference: str

    def copy_sources(self) -> list[str]:
        """The context paths the Dockerfile's `COPY` steps read (not `COPY --from`)."""
        sources: list[str] = []
        # Instructions, with `\`-continued lines joined as Docker reads them.
        text = self.dockerfile.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if len(words) >= 3 and words[0].upper() == "COPY":
                if any(w.startswith("--from") for w in words[1:-1]):
                    continue
                sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
        return sources


def project_images() -> dict[str, ProjectImage]:
    """The images the manifests run, by name, with the Dockerfile that builds each."""
    deployment = yaml.safe_load(OPERATOR_MANIFEST.read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", ())}
    return {
        "operator": ProjectImage("operator", REPO / "operator" / "Dockerfile", container["image"]),
        "runtime": ProjectImage(
            "runtime", REPO / "runtime" / "Dockerfile", env["MLMODEL_OPERATOR_RUNTIME_IMAGE"]
        ),
    }


def context_files(image: ProjectImage) -> list[str]:
    """Every tracked file under the Dockerfile's COPY sources, in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *image.copy_sources()],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and (REPO / p).is_file())


def cache_key(image: ProjectImage, base: str) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, base, image.dockerfile.read_text()):
        digest.update(part.encode() + b"\0")
    for path in context_files(image):
        digest.update(path.encode() + b"\0" + (REPO / path).read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def images_dir() -> Path:
    return cache_root() / "images"


def archive_for(name: str) -> Path:
    """The built archive of image `name` for the current inputs, or a clear error.

    Inside the network sandbox nothing can be built, so the tests ask for what
    `make images` left; the key needs only the base's recipe, not buildah.
    """
    image = project_images()[name]
    path = images_dir() / f"{name}-{cache_key(image, baseimage.reference())}.tar"
    if not path.exists():
        raise BuildahError(
            f"the {name} image for this tree is not built ({path} is missing): "
            "run `make images` (outside the network sandbox) first"
        )
    return path


def ensure(name: str, buildah: Buildah | None = None) -> Path:
    """Build image `name` from its Dockerfile unless its inputs are unchanged. A cached
    archive is found without buildah (the key needs only the base's recipe), so `make
    images` with nothing to build works anywhere, inside the network sandbox too (`make
    demo DEMO_ARGS=--pods=real` run by a test)."""
    with contextlib.suppress(BuildahError):
        return archive_for(name)
    buildah = buildah or Buildah()
    image = project_images()[name]
    logs = images_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = baseimage.ensure_base(buildah, logs / "base.log")
    key = cache_key(image, base)
    target = images_dir() / f"{name}-{key}.tar"
    if target.exists():
        return target
    with (images_dir() / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        log = logs / f"{name}-{key}.log"
        log.write_text("")
        print(
            f"building {image.reference} from {image.dockerfile.relative_to(REPO)} ...",
            file=sys.stderr,
        )
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"{name}-context-", dir=images_dir()) as context:
            for path in context_files(image):
                (Path(context) / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / path, Path(context) / path)
            buildah.run(
                "build",
                "--isolation",
                "chroot",
                "--build-arg",
                f"BASE={base}",
                "--label",
                f"dev.mlops.localenv.base={base}",
                "-f",
                str(image.dockerfile),
                "-t",
                image.reference,
                context,
                log=log,
            )
        partial = target.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        buildah.run("push", image.reference, f"docker-archive:{partial}:{image.reference}", log=log)
        partial.rename(target)
        # The archive is what the node imports: the store keeps only the base (with the
        # vfs driver every image there is a full copy, gigabytes each), and the
        # archive of the previous inputs goes.
        buildah.run("rmi", image.reference, log=log)
        buildah.run("rmi", "--prune", log=log)
        for old in images_dir().glob(f"{name}-*.tar"):
            if old != target:
                old.unlink()
        print(
            f"built {image.reference} in {time.monotonic() - started:.0f} s: {target}",
            file=sys.stderr,
        )
        return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localenv.imagebuild",
        description="Build the operator and runtime images from their Dockerfiles (buildah).",
    )
    parser.add_argument("names", nargs="*", help="operator, runtime (default: both)")
    args = parser.parse_args(argv)
    names = args.names or sorted(project_images())
    try:
        for name in names:
            path = ensure(name)
            print(f"{name}: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    except BuildahError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
