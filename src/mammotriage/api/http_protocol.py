"""The HTTP/1.1 protocol ``mammotriage serve`` runs: uvicorn's httptools protocol with a
limit on the request line and header fields.

httptools (llhttp) has no such limit: it joins a header's pieces as they arrive, so one
16 MB header, or 100,000 small ones, is read whole into memory before the app is called,
and :mod:`mammotriage.api.limits` can only refuse it afterwards. This protocol counts the
bytes of a request until its header fields are complete and answers 431 (RFC 6585 §5),
closing the connection, once they pass ``max_header_bytes``. uvicorn hands the limit over as
``h11_max_incomplete_event_size``, its one setting of this kind (h11's own buffer limit,
which the same value bounds when ``--http h11`` is chosen).

The count is of whole reads from the socket, so a read that ends one request's body and
starts the next request's header fields counts a little too much; a read holds at most
256 KiB (asyncio's limit), so no more than that passes the limit before the refusal.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

#: When uvicorn is given no limit (h11's own default).
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: What ``mammotriage serve`` passes to ``uvicorn.run(http=...)``.
PROTOCOL = "mammotriage.api.http_protocol:HeaderLimitedHttpToolsProtocol"


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; 431 once a request's head passes its limit."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self.head_bytes = 0
        self.in_head = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.in_head or self.transport.is_closing():
            return
        self.head_bytes += len(data)
        if self.head_bytes > self.max_header_bytes:
            self.refuse_head()

    def refuse_head(self) -> None:
        """Answer 431 and close: the rest of the request is never read."""
        body = json.dumps(
            {
                "detail": f"request line and header fields over {self.max_header_bytes} bytes; "
                "refused"
            }
        ).encode()
        content = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


__all__ = ["PROTOCOL", "HeaderLimitedHttpToolsProtocol"]
