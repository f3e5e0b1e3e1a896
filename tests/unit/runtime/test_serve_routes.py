"""The routing table of the HTTP app and what its 404s say."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmodel_runtime.serve.adapters import v1_adapters, v2_adapters
from mlmodel_runtime.serve.routes import Route, build_routes, not_found_message
from tests.helpers.inprocess import config

pytestmark = pytest.mark.unit


def test_a_version_adds_the_version_paths_and_inference_paths_carry_their_protocol() -> None:
    settings = config(Path("."), max_json_body_bytes=1000, max_body_bytes=5000)
    v2, v1 = v2_adapters(settings), v1_adapters(settings)
    routes = build_routes(name="tiny", version="v1", v2=v2, v1=v1)
    assert routes["/v2/models/tiny/versions/v1/infer"] == routes["/v2/models/tiny/infer"]
    infer = routes["/v2/models/tiny/infer"]
    assert (infer.route, infer.method) == (Route.INFER, "POST")
    assert infer.adapters is not None
    assert (infer.adapters.json.name, infer.adapters.binary.name) == ("v2 JSON", "v2 binary")
    predict = routes["/v1/models/tiny:predict"].adapters
    assert predict is not None
    # KServe v1 has no binary form: a binary header changes nothing.
    assert (predict.json.name, predict.binary.name) == ("KServe v1", "KServe v1")
    assert (v2.json.limit, v2.binary.limit, predict.json.limit) == (1000, 5000, 1000)
    unversioned = build_routes(name="tiny", version="", v2=v2, v1=v1)
    assert set(routes) - set(unversioned) == {
        "/v2/models/tiny/versions/v1",
        "/v2/models/tiny/versions/v1/ready",
        "/v2/models/tiny/versions/v1/infer",
    }


@pytest.mark.parametrize(
    ("path", "version", "message"),
    [
        ("/v2/models/rose", "v1", "unknown model 'rose'; this server serves 'tiny' version 'v1'"),
        (
            "/v2/models/tiny/versions/v9/infer",
            "v1",
            "unknown version 'v9' of model 'tiny'; this server serves 'tiny' version 'v1'",
        ),
        (
            "/v2/models/tiny/versions/v1",
            "",
            "unknown version 'v1' of model 'tiny'; this server serves 'tiny' (no versions)",
        ),
        (
            "/v2/models/tiny/explain",
            "v1",
            "unknown path /v2/models/tiny/explain; see /v2/models/tiny",
        ),
        (
            "/v1/models/rose:predict",
            "v1",
            "unknown model 'rose'; this server serves 'tiny' version 'v1'",
        ),
        (
            "/v1/models/tiny:explain",
            "v1",
            "unknown path /v1/models/tiny:explain; use /v1/models/tiny:predict",
        ),
        ("/nothing/here", "v1", "unknown path /nothing/here"),
    ],
)
def test_a_404_says_what_this_server_serves(path: str, version: str, message: str) -> None:
    assert not_found_message(path, name="tiny", version=version) == message
