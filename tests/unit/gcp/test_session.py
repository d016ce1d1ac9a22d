"""GcpSession retries and error messages, against a real loopback HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    GcpApiError, GcpError, GcpSession, build_credentials,
)


class Script:
    """Answers queued per path: (status, body, headers) or 'drop' to close the connection."""

    def __init__(self):
        self.queue = {}
        self.seen = []
        self.auth = []


def make_handler(script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            self.seen_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            script.seen.append((self.command, self.path))
            script.auth.append(self.headers.get("Authorization"))
            steps = script.queue.get(self.path, [])
            step = steps.pop(0) if len(steps) > 1 else (steps[0] if steps else (404, {"error": {"message": "nope"}}, {}))
            if step == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            status, body, headers = step
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

    return Handler


@pytest.fixture
def server():
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield script
    httpd.shutdown()
    httpd.server_close()


def session(**params):
    sleeps = []
    base = {"auth_kind": "anonymous", "max_retries": 3, "request_timeout": 5}
    base.update(params)
    return GcpSession(base, sleep=sleeps.append, rng=lambda: 1.0), sleeps


def test_retries_5xx_then_succeeds_with_growing_backoff(server):
    server.queue["/x"] = [(503, {}, {}), (500, {}, {}), (200, {"ok": True}, {})]
    sess, sleeps = session()
    assert sess.json("GET", server.url + "/x") == {"ok": True}
    assert [c[2] for c in sess.calls] == [503, 500, 200]
    assert sleeps == [0.5, 1.0]


def test_retry_after_header_is_honoured(server):
    server.queue["/x"] = [(429, {}, {"Retry-After": "3"}), (200, {"ok": 1}, {})]
    sess, sleeps = session()
    sess.json("GET", server.url + "/x")
    assert sleeps == [3.0]


def test_dropped_connection_heals(server):
    server.queue["/x"] = ["drop", (200, {"ok": 2}, {})]
    sess, _server = session()
    assert sess.json("GET", server.url + "/x") == {"ok": 2}
    assert sess.calls[0][2] is None


def test_exhausted_retries_name_the_request(server):
    server.queue["/x"] = [(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "backend down"}}, {})]
    sess, sleeps = session(max_retries=2)
    with pytest.raises(GcpApiError) as err:
        sess.json("GET", server.url + "/x", context="bucket 'b'")
    assert len(sleeps) == 2
    assert "bucket 'b': GET" in str(err.value) and "503 UNAVAILABLE: backend down" in str(err.value)


def test_client_errors_are_not_retried_and_keep_googles_reason(server):
    server.queue["/x"] = [(409, {"error": {"code": 409, "message": "You already own it.",
                                           "errors": [{"reason": "conflict"}]}}, {})]
    sess, sleeps = session()
    with pytest.raises(GcpApiError) as err:
        sess.json("POST", server.url + "/x", json={})
    assert sleeps == [] and err.value.status == 409 and err.value.reason == "conflict"


def test_allowed_404_returns_none(server):
    sess, _server = session()
    assert sess.json("GET", server.url + "/missing", allow=(404,)) is None


def test_access_token_is_sent_as_bearer(server):
    server.queue["/x"] = [(200, {}, {})]
    sess, _server = session(auth_kind="accesstoken", access_token="tok-123")
    sess.json("GET", server.url + "/x")
    assert server.auth[-1] == "Bearer tok-123"
    assert sess.token() == "tok-123"


def test_credential_errors_name_the_option(tmp_path):
    with pytest.raises(GcpError, match="needs access_token"):
        build_credentials({"auth_kind": "accesstoken"})
    with pytest.raises(GcpError, match="service_account_file '/nope.json' does not exist"):
        build_credentials({"auth_kind": "serviceaccount", "service_account_file": "/nope.json"})
    bad = tmp_path / "key.json"
    bad.write_text("{}")
    with pytest.raises(GcpError, match="is not a service-account key"):
        build_credentials({"auth_kind": "serviceaccount", "service_account_file": str(bad)})


def test_a_server_echoing_the_authorization_header_gets_it_redacted(server):
    token = "ya29.echoed-by-a-hostile-proxy-0042"
    server.queue["/x"] = [(400, {"error": {"code": 400, "message": f"bad request with Authorization: Bearer {token}"}},
                           {})]
    sess, _sleeps = session(auth_kind="accesstoken", access_token=token)
    with pytest.raises(GcpApiError) as err:
        sess.json("GET", server.url + "/x")
    assert token not in str(err.value) and "Bearer <redacted>" in str(err.value)


def test_retry_false_makes_one_attempt_and_tells_transient_failures(server):
    from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpConnectionError

    server.queue["/x"] = [(503, {}, {}), (200, {}, {})]
    server.queue["/drop"] = ["drop", (200, {}, {})]
    sess, sleeps = session()
    with pytest.raises(GcpApiError) as err:
        sess.request("PUT", server.url + "/x", retry=False)
    assert err.value.retryable and sleeps == []
    with pytest.raises(GcpConnectionError):
        sess.request("PUT", server.url + "/drop", retry=False)
    assert len(sess.calls) == 2
