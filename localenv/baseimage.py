"""A stand-in for `python:3.11-slim-bookworm`, made here because no registry can be reached.

The Dockerfiles start `FROM ${BASE}`, by default the public Python slim image kind users
pull. What they rely on of it: Debian bookworm with CPython 3.11 installed under
`/usr/local` (so `pip install --prefix=/install` lays files out as `/usr/local` expects,
which Debian's own python3 does not: its scheme adds `local/`), pip, and a shell. This
module makes the same thing the way the official image's recipe does: a minimal
bookworm root filesystem (debootstrap, from Debian's mirror), CPython compiled from its
upstream source (Debian's copy of the release tarball, pinned by its SHA-256) with
`--prefix=/usr/local --enable-shared`, pip from CPython's bundled wheel, the same
symlinks, tests and bytecode removed.

Where it differs, and why: CPython 3.11.2 (bookworm's source; 3.11.14 is not served
here), built without PGO/LTO (minutes, not tens of minutes); and two additions this
machine needs for a RUN step's `pip install` to reach PyPI: the machine's CA bundle and
an `/etc/pip.conf` naming it.

Cached in buildah's store (`localenv.buildah`) under a tag that hashes the recipe, so an
unchanged recipe is built once per machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from localenv.buildah import Buildah, BuildahError, cache_root

RECIPE = "1"  # bump when the steps below change
PYTHON_VERSION = "3.11.2"
PYTHON_SOURCE = "http://deb.debian.org/debian/pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz"
PYTHON_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# The shared libraries CPython's modules link against, and what the slim image keeps.
RUNTIME_PACKAGES = (
    "ca-certificates",
    "netbase",
    "tzdata",
    "libbz2-1.0",
    "libexpat1",
    "libffi8",
    "libgdbm6",
    "liblzma5",
    "libncursesw6",
    "libnsl2",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libtirpc3",
    "libuuid1",
    "zlib1g",
)
# What compiling CPython needs on this machine: header -> Debian package.
BUILD_HEADERS = {
    "/usr/include/x86_64-linux-gnu/openssl/opensslconf.h": "libssl-dev",
    "/usr/include/zlib.h": "zlib1g-dev",
    "/usr/include/x86_64-linux-gnu/ffi.h": "libffi-dev",
    "/usr/include/bzlib.h": "libbz2-dev",
    "/usr/include/lzma.h": "liblzma-dev",
    "/usr/include/sqlite3.h": "libsqlite3-dev",
    "/usr/include/ncursesw/curses.h": "libncurses-dev",
    "/usr/include/readline/readline.h": "libreadline-dev",
    "/usr/include/uuid/uuid.h": "uuid-dev",
    "/usr/include/gdbm.h": "libgdbm-dev",
    "/usr/include/expat.h": "libexpat1-dev",
    "/usr/include/tirpc/rpc/rpc.h": "libtirpc-dev",
    "/usr/include/rpcsvc/yp_prot.h": "libnsl-dev",
}
CONFIGURE = (
    "--prefix=/usr/local",
    "--enable-shared",
    "--enable-loadable-sqlite-extensions",
    "--with-system-expat",
    "--without-ensurepip",
)
ENV = (
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    f"PYTHON_VERSION={PYTHON_VERSION}",
)
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REPOSITORY = "localenv.test/python"


def cache_key() -> str:
    digest = hashlib.sha256()
    for part in (RECIPE, PYTHON_SHA256, SUITE, MIRROR, *RUNTIME_PACKAGES, *CONFIGURE, *ENV):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def reference() -> str:
    """The base's name in buildah's store: what `--build-arg BASE=` gets."""
    return f"{REPOSITORY}:{PYTHON_VERSION}-slim-{SUITE}-{cache_key()}"


def missing_build_packages() -> list[str]:
    return sorted({pkg for header, pkg in BUILD_HEADERS.items() if not Path(header).exists()})


def ensure_base(buildah: Buildah, log: Path) -> str:
    """The stand-in base's reference, building it first when this recipe is new."""
    ref = reference()
    if buildah.has_image(ref):
        return ref
    lock_path = buildah.root / ".base.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if buildah.has_image(ref):
            return ref
        missing = missing_build_packages()
        if missing:
            raise BuildahError(
                "compiling CPython for the stand-in base needs headers from: "
                f"apt-get install {' '.join(missing)} (.ci/run installs them)"
            )
        debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
        if debootstrap is None:
            raise BuildahError("the stand-in base needs debootstrap: apt-get install debootstrap")
        print(
            f"building the stand-in base {ref}; the first build takes minutes ...", file=sys.stderr
        )
        with tempfile.TemporaryDirectory(prefix="base-", dir=buildah.root) as work:
            _build(buildah, Path(work), debootstrap, ref, log)
    return ref


def _source(log: Path) -> Path:
    """The CPython release tarball, downloaded once and checked against its pinned hash."""
    target = cache_root() / "downloads" / Path(PYTHON_SOURCE).name
    if target.exists() and _sha256(target) == PYTHON_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with log.open("a") as handle:
        handle.write(f"downloading {PYTHON_SOURCE}\n")
    with urllib.request.urlopen(PYTHON_SOURCE, timeout=300) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out)
    found = _sha256(partial)
    if found != PYTHON_SHA256:
        partial.unlink()
        raise BuildahError(f"{PYTHON_SOURCE}: SHA-256 {found}, expected {PYTHON_SHA256}")
    partial.rename(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _step(command: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        result = subprocess.run(
            command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BuildahError(
            f"{command[0]} failed (exit {result.returncode}) building the stand-in base; "
            f"full log in {log}. Last lines:\n{tail}"
        )


def _build(buildah: Buildah, work: Path, debootstrap: str, ref: str, log: Path) -> None:
    with tarfile.open(_source(log)) as archive:
        archive.extractall(work, filter="data")
    source = work / f"Python-{PYTHON_VERSION}"
    _step(["./configure", *CONFIGURE], log, cwd=source)
    _step(["make", f"-j{os.cpu_count() or 2}"], log, cwd=source)

    container = buildah.run("from", "--name", f"localenv-base-{os.getpid()}", "scratch")
    try:
        root = Path(buildah.run("mount", container))
        packages = ",".join(RUNTIME_PACKAGES)
        _step(
            [debootstrap, "--variant=minbase", f"--include={packages}", SUITE, str(root), MIRROR],
            log,
        )
        _step(["make", "install", f"DESTDIR={root}"], log, cwd=source)
        _step(["chroot", str(root), "ldconfig"], log)
        _step(
            ["chroot", str(root), "/usr/local/bin/python3", "-m", "ensurepip", "--default-pip"], log
        )
        for name in ("idle3", "pydoc3", "python3", "python3-config"):
            link = root / "usr/local/bin" / name[:-1]
            if not link.exists():
                link.symlink_to(name)
        _slim(root)
        # This machine reaches PyPI through its own CA: a RUN step's pip must trust it.
        shutil.copyfile(CA_BUNDLE, root / CA_BUNDLE.relative_to("/"))
        (root / "etc/pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")
        buildah.run("unmount", container)
        config = ["config", "--cmd", "python3"]
        for env in ENV:
            config += ["--env", env]
        buildah.run(*config, container)
        buildah.run("commit", "--rm", container, ref, log=log)
    except BaseException:
        buildah.remove(container)
        raise


def _slim(root: Path) -> None:
    """What the official slim recipe removes: tests, bytecode, static libpython, apt's
    downloads; and device nodes debootstrap made (a runtime mounts /dev itself)."""
    for path in sorted((root / "usr/local").rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink():
            continue
        if path.is_dir() and path.name in ("test", "tests", "idle_test"):
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in (".pyc", ".pyo")
            or (path.name.startswith("libpython") and path.suffix == ".a")
        ):
            path.unlink()
    for directory in ("var/cache/apt/archives", "var/lib/apt/lists", "dev"):
        target = root / directory
        if target.is_dir():
            for entry in target.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()


if __name__ == "__main__":
    # `.ci/run` asks which Debian packages compiling CPython still needs (stdlib only).
    if sys.argv[1:] == ["--missing-build-packages"]:
        print(" ".join(missing_build_packages()))
    else:
        print("usage: python -m localenv.baseimage --missing-build-packages", file=sys.stderr)
        sys.exit(2)
