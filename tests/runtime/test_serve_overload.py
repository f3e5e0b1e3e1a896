"""A server whose event loop runs late sheds inference requests at their head, from a
real client's point of view (`--max-loop-lag-ms`, `serve/overload.py`).

The load is many connections each sending its next request as soon as the last one is
answered; with a bound of one millisecond, the loop is late whenever it has a few dozen
requests to parse at once, on any machine. What a client must see: only 200 and 503;
each shed answer a complete 503 with Retry-After, the revision and a message naming
the flag; the connection kept for the next request; and each shed request counted.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field

import orjson
import pytest

from tests.helpers.metrics import scrape, value
from tests.runtime.conftest import Server, ServerFactory, TrainedModel

pytestmark = pytest.mark.runtime

ONE_ROW = orjson.dumps(
    {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
)
REQUEST = (
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(ONE_ROW), ONE_ROW)
)
CONNECTIONS = 128


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Connection:
    sock: socket.socket
    buffer: bytes = b""
    sent: int = 0
    answers: list[Answer] = field(default_factory=list)

    def send(self) -> None:
        self.sock.sendall(REQUEST)
        self.sent += 1

    def take(self) -> Answer | None:
        """The next complete answer in the buffer, if there is one."""
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        if not found:
            return None
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        if len(rest) < length:
            return None
        self.buffer = rest[length:]
        return Answer(int(lines[0].split(" ", 2)[1]), headers, rest[:length])


def flood(server: Server, *, until_shed: int, seconds: float) -> list[Connection]:
    """Keep every connection busy until `until_shed` requests were shed by the loop's
    bound, or `seconds` passed; the connections with their answers."""
    selector = selectors.DefaultSelector()
    connections = []
    for _ in range(CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setblocking(False)
        connection = Connection(sock)
        connections.append(connection)
        selector.register(sock, selectors.EVENT_READ, connection)
        connection.send()
    shed = 0
    deadline = time.monotonic() + seconds
    while shed < until_shed and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            connection = key.data
            data = connection.sock.recv(65536)
            assert data, "the server closed a kept-alive connection"
            connection.buffer += data
            while (answer := connection.take()) is not None:
                connection.answers.append(answer)
                shed += b"--max-loop-lag-ms" in answer.body
                connection.send()
    for connection in connections:  # the answers still on their way
        connection.sock.setblocking(True)
        while len(connection.answers) < connection.sent:
            data = connection.sock.recv(65536)
            assert data, "the server closed a kept-alive connection"
            connection.buffer += data
            while (answer := connection.take()) is not None:
                connection.answers.append(answer)
        connection.sock.close()
    selector.close()
    return connections


def test_a_late_loop_sheds_at_the_head_with_a_503_and_keeps_the_connection(
    fresh_server: ServerFactory, iris_model: TrainedModel
) -> None:
    server = fresh_server(
        iris_model.path, name="iris", extra=("--max-loop-lag-ms", "1", "--revision", "r1")
    )
    connections = flood(server, until_shed=200, seconds=30)
    answers = [a for c in connections for a in c.answers]
    by_loop = [a for a in answers if b"--max-loop-lag-ms" in a.body]

    assert {a.status for a in answers} <= {200, 503}
    assert len(by_loop) >= 200, f"{len(answers)} answers, none shed by the loop's bound"
    for answer in by_loop:
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["x-mlmodel-revision"] == "r1"
        assert answer.headers["content-type"] == "application/json"
        assert "overloaded" in orjson.loads(answer.body)["error"]
    # Kept alive: connections went on with the next request after a shed one.
    assert any(
        a.status == 200 and any(b in c.answers[:i] for b in by_loop)
        for c in connections
        for i, a in enumerate(c.answers)
    )

    with server.client() as client:
        # Caught up once the flood is over: the next request is served.
        time.sleep(0.1)
        assert client.post("/v2/models/iris/infer", content=ONE_ROW).status_code == 200
        metrics = scrape(client)
    labels = {"model": "iris", "version": "v1"}
    assert value(metrics, "mlmodel_rejected_requests_total", reason="loop", **labels) == len(
        by_loop
    )
    served_503 = [a for a in answers if a.status == 503]
    assert value(metrics, "mlmodel_requests_total", code="503", **labels) == len(served_503)
