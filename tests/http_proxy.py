"""An HTTP/1.1 reverse proxy on 127.0.0.1 for tests and benchmarks: it records every request and lets a
subclass answer, alter, delay or cut any exchange (bench/common.RequestCounter counts with it,
tests/integration/gcs/faultproxy.py injects faults with it).
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field

# Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1); a proxy drops them.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "transfer-encoding", "upgrade", "expect"))


@dataclass
class Reply:
    """A response to send back: from the target, or made up by the proxy."""

    status: int
    reason: str = ""
    headers: list = field(default_factory=list)   # [(name, value)]
    body: bytes = b""

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Exchange:
    """One request on one client connection: forward() it (optionally altered), or cut the connection."""

    def __init__(self, handler, method, path, headers, body):
        self._handler = handler
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.cut = False

    @property
    def query(self):
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)

    def header(self, name):
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def forward(self, *, headers=None, body=None):
        return self._handler.send_upstream(self.method, self.path, self.headers if headers is None else headers,
                                           self.body if body is None else body)

    def drop(self):
        """Close the client connection without an answer (FIN): the request may have been applied."""
        self._close(linger=False)

    def reset(self):
        """Reset the client connection (RST, SO_LINGER 0), as a crashed peer or middlebox does."""
        self._close(linger=True)

    def _close(self, linger):
        self.cut = True
        conn = self._handler.connection
        try:
            if linger:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection; every request goes to this connection's own keep-alive upstream connection."""

    protocol_version = "HTTP/1.1"
    proxy = None  # the ForwardingProxy; set on the per-proxy subclass
    upstream = None

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet: the proxy's calls are the log

    def _request_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def send_upstream(self, method, path, headers, body):
        """The target's Reply; one retry on a fresh connection when a kept-alive one turns out closed."""
        headers = dict(headers)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body or b""))
        for attempt in (0, 1):
            fresh = self.upstream is None
            if fresh:
                self.upstream = http.client.HTTPConnection(*self.proxy.target, timeout=self.proxy.timeout)
            try:
                self.upstream.request(method, path, body=body, headers=headers)
                response = self.upstream.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.upstream.close()
                self.upstream = None
                if fresh or attempt:
                    raise
                continue
            if response.will_close:
                self.upstream.close()
                self.upstream = None
            return Reply(response.status, response.reason, response.getheaders(), data)
        raise AssertionError("unreachable")

    def _serve(self):
        body = self._request_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        exchange = Exchange(self, self.command, self.path, headers, body)
        try:
            reply = self.proxy.respond(exchange)
        except (OSError, http.client.HTTPException) as exc:
            reply = Reply(502, "Bad Gateway", [("Content-Type", "text/plain")],
                          f"proxy: {self.proxy.target[0]}:{self.proxy.target[1]} unreachable: {exc}\n".encode())
        self.proxy.record(self.command, self.path, None if exchange.cut else reply.status)
        if exchange.cut:
            self.close_connection = True
            return
        try:
            self._write(reply)
        except OSError:
            self.close_connection = True  # the client stopped waiting (a stall longer than its timeout)

    def _write(self, reply):
        self.send_response_only(reply.status, reply.reason or None)
        upstream_length = None
        for name, value in reply.headers:
            lower = name.lower()
            if lower == "content-length":
                upstream_length = value
            elif lower not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            if upstream_length is not None:
                self.send_header("Content-Length", upstream_length)  # the length a GET would have
        elif reply.status >= 200 and reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass  # the connection was cut on purpose, or the client gave up waiting
        finally:
            if self.upstream is not None:
                self.upstream.close()


class ForwardingProxy:
    """Forwards every request to target_url and records (method, path, status) in arrival order.

    `.url` is target_url with the proxy's address (the path is kept: a metrics URL stays a metrics URL).
    Bodies are buffered, connections kept alive. Subclasses override respond(exchange); a cut
    connection is recorded with status None.
    """

    def __init__(self, target_url, timeout=60.0):
        parts = urllib.parse.urlsplit(target_url if "://" in target_url else f"http://{target_url}")
        if parts.scheme != "http":
            raise ValueError(f"{type(self).__name__} forwards plain http only, not {target_url!r}")
        self.target = (parts.hostname, parts.port or 80)
        self.timeout = timeout
        self.calls = []
        self._lock = threading.Lock()
        handler = type("ProxyHandler", (_Handler,), {"proxy": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = urllib.parse.urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True)
        self._thread.start()

    def respond(self, exchange):
        return exchange.forward()

    def record(self, method, path, status):
        with self._lock:
            self.calls.append((method, path, status))

    def reset(self):
        """Forget the calls so far; returns them."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# bench/converge.py counts the requests at each server of the local stack with the plain forwarder.
RequestCounter = ForwardingProxy
