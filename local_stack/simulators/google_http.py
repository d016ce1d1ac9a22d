"""What the Google API simulators share: Google-shaped errors, queued faults, a JSON request handler, and the one
way the local stack's in-process HTTP servers start and stop (the control plane's helpers use it too)."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# The legacy per-error reason Google's JSON errors still carry next to the status name; clients test it
# (terraform-provider-google tpgresource.IsFailedPreconditionError reads errors[].reason == "failedPrecondition").
LEGACY_REASONS = {"INVALID_ARGUMENT": "badRequest", "UNAUTHENTICATED": "required", "PERMISSION_DENIED": "forbidden",
                  "NOT_FOUND": "notFound", "ALREADY_EXISTS": "alreadyExists", "FAILED_PRECONDITION": "failedPrecondition",
                  "RESOURCE_EXHAUSTED": "rateLimitExceeded", "INTERNAL": "backendError", "UNAVAILABLE": "backendError"}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE"}


class ApiError(Exception):
    """An error the simulator answers with, as Google would: HTTP code, message, status name, reason."""

    def __init__(self, code, message, status=None, reason=None):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.reason = reason


class FaultQueue:
    """Faults a test queued in ``self.faults`` (guarded by ``self.lock``), each used ``count`` times."""

    faults: list
    lock: threading.RLock

    def take_fault(self, kinds, text):
        """The first queued fault of one of these kinds whose ``match`` regex is found in text, or None."""
        with self.lock:
            for fault in self.faults:
                if fault["kind"] in kinds and fault["count"] > 0 and re.search(fault["match"], text):
                    fault["count"] -= 1
                    return dict(fault)
        return None


class MultiApiSimulator(FaultQueue):
    """A simulator of several Google APIs, one loopback server each (compute and serviceusage; iam, resource
    manager and storage): their discovery documents, the request log, queued faults, serve and close.

    ``requests`` holds ``(api, method, path, method id or None, status)``; ``_handler()`` is the subclass's
    JsonHandler.
    """

    def _init_apis(self, discovery):
        """discovery: {api name: Discovery}; the path prefix of each API is its servicePath."""
        self.discovery = discovery
        self.parameters = {api: d.parameters for api, d in discovery.items()}
        self.prefix = {api: "/" + d.doc.get("servicePath", "").rstrip("/") if d.doc.get("servicePath") else ""
                       for api, d in discovery.items()}
        self.lock = threading.RLock()
        self.requests = []
        self.faults = []
        self.servers, self.urls = {}, {}

    def _handler(self):
        raise NotImplementedError

    def reset_log(self):
        with self.lock:
            self.requests.clear()

    def serve(self):
        return serve_apis(self, self.discovery, self._handler())

    def close(self):
        stop_apis(self)


class JsonHandler(BaseHTTPRequestHandler):
    """One request pipeline for the Google API simulators: every verb goes through ``_dispatch``, which reads the
    request, plays queued faults, checks the bearer token and the JSON body, asks ``_answer`` and logs the outcome.

    A subclass gives ``_answer``; a simulator of one API (GKE) also ``_match`` and ``_log``.
    """

    protocol_version = "HTTP/1.1"
    sim = None  # the simulator; serve_apis / serve_http's handler subclass sets it
    api = None  # the API this server answers, for a MultiApiSimulator
    #: How each API's errors look, by API name: "reason" (a reason per error, no status name: Compute, Cloud
    #: Storage's JSON API) or "status" (the status name only: Service Usage, IAM, Resource Manager); an API not
    #: named answers with both (GKE). A queued fault's ``reason`` fills the field the API has.
    error_shapes: dict = {}
    #: The reason by HTTP code of a "reason" API's errors.
    reasons_by_code: dict = {}

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, verb, path, query, body):
        """(method id, (status, payload)) of a request, as the simulator's handle() gives it, or raise ApiError.
        query is the raw query string."""
        raise NotImplementedError

    def _dispatch(self, verb):
        sim = self.sim
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        method_id, text = self._identify(verb, path)
        if sim.take_fault(("drop",), text):
            self._log(verb, path, method_id, None)
            self._drop()
            return
        try:
            if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                raise ApiError(401, "Request is missing required authentication credential.", "UNAUTHENTICATED")
            fault = sim.take_fault(("status",), text)
            if fault:
                raise self._fault_error(fault)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(400, "Invalid JSON payload received.") from None
            method_id, (status, payload) = self._answer(verb, path, parts.query, body)
        except ApiError as exc:
            self._log(verb, path, method_id, exc.code)
            self._error(exc)
            return
        if sim.take_fault(("lose_response",), text):
            self._log(verb, path, method_id, None)  # the write happened; its answer never reaches the client
            self._drop()
            return
        self._log(verb, path, method_id, status)
        self._send(status, payload)

    def _identify(self, verb, path):
        """(method id or None, the text queued faults are matched against) of a request."""
        found = self._match(verb, path)
        method_id = found[0] if found else None
        return method_id, f"{verb} {path} {method_id or ''}"

    def _match(self, verb, path):
        """The discovery document's match of a request to one API of a MultiApiSimulator (below its servicePath)."""
        discovery, prefix = self.sim.discovery[self.api], self.sim.prefix[self.api]
        return discovery.match(verb, path[len(prefix):]) if path.startswith(prefix) else None

    def _log(self, verb, path, method_id, status):
        """Record the request in the simulator's ``requests`` (status None: no answer reached the client)."""
        with self.sim.lock:
            self.sim.requests.append((self.api, verb, path, method_id, status))

    def _drop(self):
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)  # the client sees a reset / empty reply

    def _send(self, status, payload):
        send_json(self, status, payload)

    def _fault_error(self, fault):
        code, message = fault["status"], fault["message"] or "Simulated fault."
        if self._error_shape() == "reason":
            return ApiError(code, message, reason=fault["reason"])
        return ApiError(code, message, status=fault["reason"])

    def _error_shape(self):
        return self.error_shapes.get(self.api, "both")

    def _error(self, error):
        shape = self._error_shape()
        payload = {"code": error.code, "message": error.message}
        if shape != "reason":
            payload["status"] = error.status
        if shape != "status":
            words = error.status.lower().split("_")
            reason = error.reason or (self.reasons_by_code.get(error.code, "backendError") if shape == "reason" else
                                      LEGACY_REASONS.get(error.status, words[0] + "".join(w.title() for w in words[1:])))
            payload["errors"] = [{"message": error.message, "domain": "global", "reason": reason}]
        self._send(error.code, {"error": payload})

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self):  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")


def send_json(handler, status, payload):
    """Answer an http.server request with payload as JSON, the way Google's APIs do (UTF-8, a length)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=UTF-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def free_port():
    """A loopback TCP port free now (for a program that binds it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_http(handler):
    """A ThreadingHTTPServer for ``handler`` on a free loopback port, served from a daemon thread: (server, url)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop_http(server):
    """Stop serving and close the socket (None: nothing was started)."""
    if server is not None:
        server.shutdown()
        server.server_close()


def serve_apis(sim, apis, handler):
    """One loopback server per API of a simulator that answers several (sim.servers, sim.urls by API name)."""
    for api in apis:
        sim.servers[api], sim.urls[api] = serve_http(type("Handler", (handler,), {"sim": sim, "api": api}))
    return sim


def stop_apis(sim):
    for server in sim.servers.values():
        stop_http(server)
