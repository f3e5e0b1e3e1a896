"""buildah, Debian's daemonless image builder, with a store of this project's own.

Images are built from the shipped Dockerfiles (`localenv.imagebuild`) on a stand-in base
(`localenv.baseimage`) because no Docker engine runs here and no registry can be
reached. The store (vfs driver, so it needs nothing from the kernel but plain
directories; chroot isolation, so a RUN step needs no OCI runtime of its own) lives under
`~/.cache/mlmodel-operator/buildah/`, which makes its layer cache survive between runs
and leaves any system-wide container storage alone.

Builds need the package registries (a Dockerfile's `pip install`), so they run outside
the network sandbox, like every other build here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localenv import sandbox


class BuildahError(RuntimeError):
    """buildah is missing or a command failed; the message has its output's tail."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlmodel-operator"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(frozen=True)
class Buildah:
    """One store; every command gets its `--root`, `--runroot` and driver."""

    root: Path = cache_root() / "buildah"

    def command(self, *args: str) -> list[str]:
        binary = shutil.which("buildah")
        if binary is None:
            raise BuildahError(
                "buildah is needed to build the images from the Dockerfiles: "
                "apt-get install buildah (.ci/run does)"
            )
        if sandbox.inside():
            raise BuildahError(
                "images are built outside the network sandbox (their RUN steps need the "
                "package registries): `make images` first"
            )
        return [
            binary,
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]

    def run(self, *args: str, log: Path | None = None) -> str:
        """Run `buildah args`; its output goes to `log` (appended) when given."""
        command = self.command(*args)
        if log is None:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            output = result.stdout + result.stderr
            if result.returncode != 0:
                raise BuildahError(f"buildah {' '.join(args)} failed:\n{_tail(output)}")
            return result.stdout.strip()
        with log.open("a") as handle:
            handle.write(f"$ buildah {' '.join(args)}\n")
            handle.flush()
            result = subprocess.run(
                command, stdout=handle, stderr=subprocess.STDOUT, text=True, check=False
            )
        if result.returncode != 0:
            raise BuildahError(
                f"buildah {' '.join(args)} failed (exit {result.returncode}); full log in "
                f"{log}. Last lines:\n{_tail(log.read_text(errors='replace'))}"
            )
        return ""

    def remove(self, container: str) -> None:
        """Best effort: a failed build must not leave its working container behind."""
        subprocess.run(self.command("rm", container), capture_output=True, check=False)

    def has_image(self, reference: str) -> bool:
        command = self.command("inspect", "--type", "image", reference)
        return subprocess.run(command, capture_output=True, check=False).returncode == 0
