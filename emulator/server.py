"""HTTPS plumbing: a threading HTTP/1.1 server; TLS is set up in each connection's thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from .core import Core
from .wire import Request

log = logging.getLogger("emulator.http")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "unblock-email-emulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this
    server: TLSServer

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        req = Request(
            method=self.command,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            raw_query=query,
            headers=self.headers,
            body=body,
            base_url=self.server.base_url,
        )
        resp = self.server.core.dispatch(req)
        if resp.drop:
            # Close the socket without a response: the client sees a dropped connection.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, core: Core) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.core = core
        self.base_url = f"https://127.0.0.1:{self.server_address[1]}"
        self._open: set[ssl.SSLSocket] = set()
        self._open_lock = threading.Lock()

    def close_connections(self) -> None:
        """Cut idle keep-alive connections too, so a stopped emulator really stops answering."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's thread: a slow client never blocks
        # accept(). NODELAY: headers and body go out in separate writes.
        request.settimeout(10)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        with self._open_lock:
            self._open.add(tls)
        try:
            _Handler(tls, client_address, self)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError) as exc:
            log.debug("connection %s ended: %s", client_address, exc)
        finally:
            with self._open_lock:
                self._open.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unexpected error serving %s", client_address)
