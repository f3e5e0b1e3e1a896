"""The routing table of the HTTP app, and what a 404 says; pure functions.

`app.py` builds the table once at start-up from the served model's name and
version, and looks each request's path up in it: one exact-match dict lookup per
request, no patterns. An inference path carries its protocol adapters (`adapters.py`),
so the table is where v1 and v2 part ways. A path that is not in the table gets a
404 whose message says what this server serves instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from mlmodel_runtime.serve.adapters import Adapters


class Route(Enum):
    INFER = auto()
    MODEL_METADATA = auto()
    MODEL_READY = auto()
    SERVER_METADATA = auto()
    LIVE = auto()
    READY = auto()
    METRICS = auto()


@dataclass(frozen=True, slots=True)
class Endpoint:
    route: Route
    method: str
    # How the requests of an inference endpoint are decoded and answered; None elsewhere.
    adapters: Adapters | None = None


def build_routes(*, name: str, version: str, v2: Adapters, v1: Adapters) -> dict[str, Endpoint]:
    """Every path this server answers, for a model `name` and (when not empty) `version`:
    the model's paths under `/v2/models/NAME` and, with a version, again under
    `/v2/models/NAME/versions/V`."""
    routes = {
        "/v2": Endpoint(Route.SERVER_METADATA, "GET"),
        "/v2/health/live": Endpoint(Route.LIVE, "GET"),
        "/v2/health/ready": Endpoint(Route.READY, "GET"),
        "/metrics": Endpoint(Route.METRICS, "GET"),
        f"/v1/models/{name}:predict": Endpoint(Route.INFER, "POST", v1),
    }
    bases = [f"/v2/models/{name}"]
    if version:
        bases.append(f"/v2/models/{name}/versions/{version}")
    for base in bases:
        routes[base] = Endpoint(Route.MODEL_METADATA, "GET")
        routes[base + "/ready"] = Endpoint(Route.MODEL_READY, "GET")
        routes[base + "/infer"] = Endpoint(Route.INFER, "POST", v2)
    return routes


def not_found_message(path: str, *, name: str, version: str) -> str:
    """Why `path` is unknown, naming the model (and version) this server serves.

    >>> not_found_message("/v2/models/rose/infer", name="iris", version="v1")
    "unknown model 'rose'; this server serves 'iris' version 'v1'"
    """
    served = f"'{name}'" + (f" version '{version}'" if version else " (no versions)")
    parts = path.split("/")
    if path.startswith("/v2/models/") and len(parts) > 3:
        asked = parts[3]
        if asked != name:
            return f"unknown model '{asked}'; this server serves {served}"
        if len(parts) > 5 and parts[4] == "versions":
            return f"unknown version '{parts[5]}' of model '{name}'; this server serves {served}"
        return f"unknown path {path}; see /v2/models/{name}"
    if path.startswith("/v1/models/"):
        asked = path[len("/v1/models/") :].split(":", 1)[0]
        if asked != name:
            return f"unknown model '{asked}'; this server serves {served}"
        return f"unknown path {path}; use /v1/models/{name}:predict"
    return f"unknown path {path}"
