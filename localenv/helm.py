"""Helm, built from its Go module like the other components (`localenv/components/helm/`),
for the chart's tests: `Helm(home, kubeconfig).run("install", ...)`.

Found the way the environment finds Traefik or CoreDNS: `localenv.components.build.ensure`
returns the cached binary, and inside the network sandbox fails with "run `make
components`" when it is missing. Helm keeps its cache, configuration and repository list
under `home`, never under `~`, so a test sees no repository or plugin of the host's Helm.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localenv.components.build import ensure as ensure_component


class HelmError(subprocess.CalledProcessError):
    """A helm command failed; the message carries what helm printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def helm_path() -> Path:
    """The helm binary, built on first use outside the sandbox (`make components`)."""
    return ensure_component("helm", quiet=True)


@dataclass(frozen=True)
class Helm:
    """helm with its state under `home`, talking to the API server of `kubeconfig`
    (no kubeconfig: commands that need no cluster, such as lint and template)."""

    home: Path
    kubeconfig: Path | None = None

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        result = subprocess.run(
            [str(helm_path()), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HelmError(result.returncode, result.args, result.stdout, result.stderr)
        return result
