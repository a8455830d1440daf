"""The small HTTP plumbing every simulator shares.

A simulator is a plain object with a ``handle(request) -> Response`` method and its state on
the instance. ``serve_on_loopback`` runs it on ``127.0.0.1`` (port 0 by default) in a thread,
speaking HTTP/1.1 with keep-alive: NTLM authenticates a *connection*, so each connection gets
its own ``Request.conn`` dict that lives as long as the socket. ``mock_transport`` runs the same
object in-process for httpx unit tests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Request", "Response", "App", "Served", "serve_on_loopback", "mock_transport", "json_response"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    conn: dict[str, Any] = field(default_factory=dict)  # per-connection state (NTLM context)
    raw_query: str = ""

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # drop the connection after this reply
    delay: float = 0.0  # seconds to stall before answering (timeouts)
    drop: bool = False  # close the socket without answering at all


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    h = {"Content-Type": "application/json; charset=utf-8"}
    h.update(headers or {})
    return Response(status, json.dumps(payload, default=str).encode("utf-8"), h)


class App(Protocol):
    def handle(self, request: Request) -> Response: ...


@dataclass
class Served:
    """A simulator running on loopback."""

    url: str
    server: ThreadingHTTPServer
    thread: threading.Thread


def _handler_for(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without NODELAY, Nagle plus the
            # client's delayed ACK stall every reply by ~40 ms.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn_state: dict[str, Any] = {}

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # quiet: tests and the demo read state, not access logs

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                conn=self.conn_state,
                raw_query=parts.query,
            )
            try:
                resp = app.handle(req)
            except Exception as exc:  # a simulator bug must show up as a 500, not a hang
                resp = Response(500, f"simulator error: {exc!r}".encode(), {"Content-Type": "text/plain"})
            if resp.delay:
                threading.Event().wait(resp.delay)
            if resp.drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.send_response(resp.status)
            headers = dict(resp.headers)
            headers.setdefault("Content-Type", "application/octet-stream")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.body)))
            if resp.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve_on_loopback(
    app: App, *, port: int = 0, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[Served]:
    """Serve ``app`` on loopback in a thread until the block exits; yields ``Served.url``."""
    server = _Server((host, port), _handler_for(app))
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    real_port = server.server_address[1]
    url_host = "localhost" if tls is not None else host  # certificates name localhost
    try:
        yield Served(f"{scheme}://{url_host}:{real_port}", server, thread)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mock_transport(app: App) -> Any:
    """An ``httpx.MockTransport`` that answers from ``app`` in-process (one shared connection)."""
    import httpx  # imported here so the simulators run without httpx installed

    conn: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        parts = urlsplit(str(request.url))
        req = Request(
            method=request.method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.read(),
            conn=conn,
            raw_query=parts.query,
        )
        resp = app.handle(req)
        if resp.drop:
            raise httpx.RemoteProtocolError("server closed the connection", request=request)
        return httpx.Response(resp.status, headers=resp.headers, content=resp.body)

    return httpx.MockTransport(handler)


def run_forever(make: Callable[[], App], port: int, *, host: str = "127.0.0.1") -> None:
    """Run one simulator in the foreground (the simulators' ``__main__`` entry points)."""
    with serve_on_loopback(make(), port=port, host=host) as served:
        print(f"listening on {served.url} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            served.thread.join()
