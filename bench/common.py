"""Shared pieces of the benchmarks: a byte-counting TCP proxy, a request-counting HTTP proxy, medians, the table."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))
RESULTS = REPO / "bench" / "results"


class CountingProxy:
    """Forwards 127.0.0.1:<port> to a target and counts the bytes each way (what a client really sent)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.sent = 0       # client → server
        self.received = 0   # server → client
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        with self._lock:
            self.sent = self.received = 0

    def _accept(self):
        while not self._stop:
            try:
                client, _addr = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, "sent"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, "received"), daemon=True).start()

    def _pipe(self, src, dst, counter):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self._sock.close()


# Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1); a proxy drops them.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "transfer-encoding", "upgrade", "expect"))


class _ForwardingHandler(http.server.BaseHTTPRequestHandler):
    """One client connection: every request is sent on this connection's own keep-alive upstream connection."""

    protocol_version = "HTTP/1.1"
    counter = None  # the RequestCounter; set on the per-counter subclass
    upstream = None

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet: the counter is the log

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

    def _send_upstream(self, body, headers):
        """(status, reason, headers, body) from the target; one retry on a fresh connection when a kept-alive
        connection turns out closed (the target may drop idle connections)."""
        for attempt in (0, 1):
            fresh = self.upstream is None
            if fresh:
                self.upstream = http.client.HTTPConnection(*self.counter.target, timeout=self.counter.timeout)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
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
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")

    def _forward(self):
        body = self._request_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        if body is not None or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body or b""))
        try:
            status, reason, response_headers, data = self._send_upstream(body, headers)
        except (OSError, http.client.HTTPException) as exc:
            status, reason, response_headers = 502, "Bad Gateway", [("Content-Type", "text/plain")]
            data = f"request counter: {self.counter.target[0]}:{self.counter.target[1]} unreachable: {exc}\n".encode()
        self.counter.record(self.command, self.path, status)
        self.send_response_only(status, reason)
        upstream_length = None
        for name, value in response_headers:
            lower = name.lower()
            if lower == "content-length":
                upstream_length = value
            elif lower not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            if upstream_length is not None:
                self.send_header("Content-Length", upstream_length)  # the length a GET would have
        elif status >= 200 and status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _forward

    def finish(self):
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()


class RequestCounter:
    """An HTTP/1.1 reverse proxy on 127.0.0.1 that forwards every request to target_url and records it.

    `.url` is target_url with the proxy's address (the path is kept: a metrics URL stays a metrics URL);
    `.calls` lists (method, path, status) in arrival order. Bodies are buffered, connections kept alive.
    """

    def __init__(self, target_url, timeout=60.0):
        parts = urllib.parse.urlsplit(target_url if "://" in target_url else f"http://{target_url}")
        if parts.scheme != "http":
            raise ValueError(f"RequestCounter forwards plain http only, not {target_url!r}")
        self.target = (parts.hostname, parts.port or 80)
        self.timeout = timeout
        self.calls = []
        self._lock = threading.Lock()
        handler = type("CountingHandler", (_ForwardingHandler,), {"counter": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = urllib.parse.urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True)
        self._thread.start()

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


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def median(values):
    return statistics.median(values) if values else float("nan")


def print_table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(f"\n{title}\n{line}\n{'-' * len(line)}")
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def write_result(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"\nwrote {path.relative_to(REPO)}")
    return path
