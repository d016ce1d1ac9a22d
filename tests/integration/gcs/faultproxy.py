"""A fault-injecting proxy in front of fake-gcs-server: 429/503, answers lost after the server stored the
data, stalls, resets, partial persistence and bytes altered on the way.

Faults are queued with inject(kind, when, times): the first queued fault whose predicate matches a
request is applied to it (and counted down). Everything else is forwarded untouched.

fake-gcs-server (1.54) departs from GCS's resumable upload protocol in two places, so the proxy keeps
its own ledger of every upload session it forwarded and answers for the session where GCS's
documented behaviour and the emulator's differ (each with its source):

* A status query, an empty PUT with "Content-Range: bytes */TOTAL", is answered as
  https://cloud.google.com/storage/docs/performing-resumable-uploads#status-check says: 308 with
  "Range: bytes=0-N" for the bytes the server persisted (no Range header when none), or 200 with the
  object when the upload completed. fake-gcs-server instead takes "bytes */TOTAL" as the end of a
  streamed upload and finalizes whatever it holds (fakestorage/upload.go, uploadFileContent).
* A session marked expired answers 410 Gone to everything, as a session the server dropped does
  (gsutil, gslib/gcs_json_api.py, starts over with a new upload ID on 404 and 410).

The proxy never repairs a client's mistakes: a chunk whose first byte is not the next byte the
session expects is forwarded as it is (fake-gcs-server appends it blindly, which corrupts the object
the way a careless client would on any server) and recorded in .violations.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

from http_proxy import ForwardingProxy, Reply

CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
STATUS_QUERY = re.compile(r"bytes \*/(\d+|\*)")

# Fault kinds:
#   status    answer `status` (default 503) without forwarding
#   stored    forward, then answer `status` instead of the server's answer (the data was stored)
#   drop      forward, then close the connection without an answer
#   reset     reset the connection (RST) before forwarding; with after=True, after forwarding
#   stall     forward, then wait `seconds` before answering (longer than the client's timeout)
#   expire    the request's upload session has expired by the time it arrives (410 from then on)
#   partial   forward only the first `keep` bytes of a chunk (Content-Range rewritten): the server
#             persists fewer bytes than were sent and its 308 says so
#   corrupt   forward with one byte of the body flipped
KINDS = ("status", "stored", "drop", "reset", "stall", "expire", "partial", "corrupt")


@dataclass
class Fault:
    kind: str
    when: object            # predicate(exchange) -> bool
    times: int = 1
    status: int = 503
    seconds: float = 0.0
    keep: int = 0
    after: bool = False
    hits: list = field(default_factory=list)


@dataclass
class Session:
    persisted: int = 0
    final: Reply = None
    expired: bool = False


def google_error(status, message):
    body = json.dumps({"error": {"code": status, "message": message,
                                 "errors": [{"domain": "global", "reason": "backendError", "message": message}]}})
    return Reply(status, "", [("Content-Type", "application/json; charset=UTF-8")], body.encode())


# Predicates for inject(): what kind of request a fault applies to.
def is_chunk(exchange, first_byte=None):
    """A resumable upload chunk (not a status query); first_byte limits it to the chunk starting there."""
    match = CONTENT_RANGE.fullmatch(exchange.header("Content-Range") or "")
    if exchange.method != "PUT" or "upload_id" not in exchange.query or not match:
        return False
    return first_byte is None or int(match.group(1)) == first_byte


def chunk_at(first_byte):
    return lambda exchange: is_chunk(exchange, first_byte)


def is_status_query(exchange):
    return exchange.method == "PUT" and bool(STATUS_QUERY.fullmatch(exchange.header("Content-Range") or ""))


def is_multipart(exchange):
    return exchange.method == "POST" and exchange.query.get("uploadType") == ["multipart"]


def is_session_start(exchange):
    return exchange.method == "POST" and exchange.query.get("uploadType") == ["resumable"] \
        and "upload_id" not in exchange.query


def is_listing(exchange):
    return exchange.method == "GET" and exchange.path.split("?")[0].endswith("/o")


def named(name, inner):
    """inner, limited to requests for the object name (an upload's `name` or its resource path)."""
    def check(exchange):
        return inner(exchange) and (exchange.query.get("name") == [name] or
                                    (exchange.body or b"").find(json.dumps(name).encode()) >= 0)
    return check


class GcsFaultProxy(ForwardingProxy):
    def __init__(self, target_url, timeout=120.0):
        super().__init__(target_url, timeout=timeout)
        self.faults = []
        self.sessions = {}
        self.violations = []
        self.applied = []   # (kind, method, path) of every fault applied
        self.status_queries = 0
        self._faults_lock = threading.Lock()

    def inject(self, kind, when, times=1, **options):
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {KINDS}")
        fault = Fault(kind, when, times, **options)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def clear(self):
        with self._faults_lock:
            self.faults = []
        self.violations.clear()
        self.status_queries = 0

    @property
    def pending(self):
        return [f for f in self.faults if f.times > 0]

    def _take(self, exchange):
        with self._faults_lock:
            for fault in self.faults:
                if fault.times > 0 and fault.when(exchange):
                    fault.times -= 1
                    fault.hits.append((exchange.method, exchange.path))
                    self.applied.append((fault.kind, exchange.method, exchange.path))
                    return fault
        return None

    def respond(self, exchange):
        upload_id = (exchange.query.get("upload_id") or [None])[0]
        session = self.sessions.setdefault(upload_id, Session()) if upload_id else None
        fault = self._take(exchange)
        if fault and fault.kind == "status":
            return google_error(fault.status, f"injected {fault.status}")
        if fault and fault.kind == "reset" and not fault.after:
            exchange.reset()
            return None
        if fault and fault.kind == "expire" and session is not None:
            session.expired = True
        if session is not None and session.expired:
            return google_error(410, "The upload session has expired; start a new one (injected)")
        if session is not None and is_status_query(exchange):
            self.status_queries += 1
            return self._status(session)
        reply = self._forward(exchange, fault, session)
        if fault is None:
            return reply
        if fault.kind == "stored":
            return google_error(fault.status, f"injected {fault.status} after the server stored the request")
        if fault.kind == "drop":
            exchange.drop()
            return None
        if fault.kind == "reset":
            exchange.reset()
            return None
        if fault.kind == "stall":
            time.sleep(fault.seconds)
        return reply

    def _forward(self, exchange, fault, session):
        body, headers = exchange.body, dict(exchange.headers)
        match = CONTENT_RANGE.fullmatch(exchange.header("Content-Range") or "")
        if session is not None and match:
            first = int(match.group(1))
            if first != session.persisted:
                self.violations.append(f"{exchange.path}: chunk starts at byte {first}, the session holds "
                                       f"{session.persisted}")
            if fault and fault.kind == "partial" and body:
                body = body[:fault.keep]
                headers = {k: v for k, v in headers.items() if k.lower() != "content-range"}
                headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{match.group(3)}"
        if fault and fault.kind == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]
        reply = exchange.forward(headers=headers, body=body)
        # A reverse proxy's Location rewrite (as Apache's ProxyPassReverse): the session URL the server
        # hands out must lead back through the proxy, or the chunks would bypass it.
        upstream = f"http://{self.target[0]}:{self.target[1]}"
        reply.headers = [(k, v.replace(upstream, f"http://127.0.0.1:{self.port}", 1) if k.lower() == "location" else v)
                         for k, v in reply.headers]
        if session is not None:
            if reply.status in (200, 201):
                session.final = reply
            elif reply.status == 308:
                persisted = re.fullmatch(r"bytes=0-(\d+)", reply.header("Range") or "")
                session.persisted = int(persisted.group(1)) + 1 if persisted else 0
        return reply

    @staticmethod
    def _status(session):
        if session.final is not None:
            return session.final
        headers = [("Content-Length", "0")]
        if session.persisted:
            headers.append(("Range", f"bytes=0-{session.persisted - 1}"))
        return Reply(308, "Permanent Redirect", headers, b"")
