"""A PACS that closes an idle keep-alive connection as the next request goes out on it: the
request meets a closed connection and no answer (Orthanc does this under load). A real HTTP
server on a socket plays that PACS: it answers each connection's first request and closes
the connection when the second arrives."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from mammotriage.errors import SourceUnavailableError
from mammotriage.worker.sources.http import PacsHttp


class OneAnswerPerConnection:
    """Answers the first request on each connection (keep-alive) and closes it, unanswered,
    when a second request arrives on it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with connection:
            stream = connection.makefile("rb")
            for answered in (True, False):
                head = _read_request(stream)
                if head is None:
                    return
                self.requests.append(head.split(" ", 2)[0])
                if not answered:
                    return  # closed without a word, as a stale keep-alive connection is
                body = b"[]"
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def _read_request(stream: BinaryIO) -> str | None:
    """The request's first line, its body read and dropped; None when the client closed."""
    first = stream.readline().decode("latin-1")
    if not first:
        return None
    length = 0
    while (line := stream.readline().decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    stream.read(length)
    return first


@pytest.fixture
def pacs() -> Iterator[OneAnswerPerConnection]:
    server = OneAnswerPerConnection()
    yield server
    server.close()


def test_a_get_on_a_connection_the_pacs_closed_is_sent_again(pacs: OneAnswerPerConnection):
    http = PacsHttp("test PACS", f"http://127.0.0.1:{pacs.port}")
    try:
        assert http.json("GET", "/studies") == []
        # Same keep-alive connection: the PACS closes it unanswered; sent again, answered.
        assert http.json("GET", "/studies") == []
    finally:
        http.close()
    assert pacs.requests == ["GET", "GET", "GET"]


def test_a_post_is_never_sent_twice(pacs: OneAnswerPerConnection):
    http = PacsHttp("test PACS", f"http://127.0.0.1:{pacs.port}")
    try:
        assert http.json("POST", "/tools/find", json={}) == []
        with pytest.raises(SourceUnavailableError, match="cannot be reached"):
            http.json("POST", "/tools/find", json={})
    finally:
        http.close()
    assert pacs.requests == ["POST", "POST"]
