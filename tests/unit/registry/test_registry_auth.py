"""WWW-Authenticate challenge parsing and the Bearer/Basic flow of RegistryClient against a loopback stub."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.auth import (
    parse_challenges, pick_challenge,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import (
    Credentials, Manifest, RegistryAuthError, RegistryClient, RegistryError, detect_media_type,
)


@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:library/ubuntu:pull"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:library/ubuntu:pull"})]),
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="https://nvcr.io/proxy_auth",scope="repository:nvidia/tritonserver:pull,push"',
     [("bearer", {"realm": "https://nvcr.io/proxy_auth", "scope": "repository:nvidia/tritonserver:pull,push"})]),
    ('bearer  realm = "r" , service=plain, error="insufficient_scope"',
     [("bearer", {"realm": "r", "service": "plain", "error": "insufficient_scope"})]),
    (r'Bearer realm="a\"b",service="s"', [("bearer", {"realm": 'a"b', "service": "s"})]),
    ('Basic realm="x", Bearer realm="https://t",service="s"',
     [("basic", {"realm": "x"}), ("bearer", {"realm": "https://t", "service": "s"})]),
    ("", []),
])
def test_parse_challenges(header, expected):
    assert parse_challenges(header) == expected


def test_pick_prefers_bearer_and_ignores_unknown():
    assert pick_challenge('Basic realm="x", Bearer realm="https://t"')[0] == "bearer"
    assert pick_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert pick_challenge('Negotiate') is None


def test_media_type_detection():
    assert detect_media_type({}, "application/vnd.oci.image.index.v1+json; charset=utf-8") == \
        "application/vnd.oci.image.index.v1+json"
    assert detect_media_type({"manifests": []}, "application/json") == "application/vnd.oci.image.index.v1+json"
    assert detect_media_type({"layers": []}, None) == "application/vnd.oci.image.manifest.v1+json"
    assert detect_media_type({"schemaVersion": 1}, "application/json").endswith("v1+prettyjws")
    raw = b'{"schemaVersion": 2, "config": {"digest": "sha256:c"}, "layers": [{"digest": "sha256:l"},' \
          b' {"digest": "sha256:f", "urls": ["https://x"]}]}'
    manifest = Manifest.from_bytes(raw, "application/vnd.docker.distribution.manifest.v2+json")
    assert [b["digest"] for b in manifest.blobs] == ["sha256:c", "sha256:l"], "foreign layers are not copied"
    assert manifest.digest.startswith("sha256:") and len(manifest) == len(raw)


class Stub:
    """A loopback registry stub: /v2/ with a Bearer (or Basic) challenge, a token realm, one manifest."""

    def __init__(self, scheme="bearer", password="pw", flaky=0, flaky_status=503, drops=0, echo=False):
        self.scheme, self.password, self.flaky, self.flaky_status = scheme, password, flaky, flaky_status
        self.drops = drops
        self.echo = echo  # a hostile registry: its error bodies echo the Authorization header it received
        self.token_requests, self.seen_auth, self.hits = [], [], 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                self.do_GET()

            def do_GET(self):  # noqa: N802
                path = urlsplit(self.path)
                if path.path == "/token":
                    stub.token_requests.append(parse_qs(path.query))
                    expected = "Basic " + base64.b64encode(f"u:{stub.password}".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        said = f"bad creds in {self.headers.get('Authorization')}" if stub.echo else "bad creds"
                        return self.reply(401, json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                                                       "message": said}]}).encode())
                    return self.reply(200, json.dumps({"token": "T0KEN"}).encode())
                if path.path.startswith("/v2/") and path.path.endswith("/manifests/v1"):
                    stub.hits += 1
                    if stub.hits <= stub.drops:
                        self.close_connection = True  # hang up without an answer
                        self.connection.shutdown(2)
                        return None
                    if stub.hits <= stub.flaky + stub.drops:
                        return self.reply(stub.flaky_status, b"busy", {"Retry-After": "1"})
                auth = self.headers.get("Authorization")
                stub.seen_auth.append(auth)
                ok = auth == "Bearer T0KEN" if stub.scheme == "bearer" else \
                    auth == "Basic " + base64.b64encode(f"u:{stub.password}".encode()).decode()
                if not ok:
                    challenge = (f'Bearer realm="http://{stub.host}/token",service="stub",'
                                 f'scope="repository:a/b:pull"' if stub.scheme == "bearer" else 'Basic realm="stub"')
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
                                      {"WWW-Authenticate": challenge})
                if path.path == "/v2/":
                    return self.reply(200, b"{}")
                if stub.echo:
                    return self.reply(403, json.dumps({"errors": [{"code": "DENIED", "message": f"denied: {auth}"}]}).encode())
                body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
                return self.reply(200, body, {"Content-Type": "application/vnd.oci.image.index.v1+json"})

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    made = []

    def make(**kwargs):
        made.append(Stub(**kwargs))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def client(stub, password="pw", **kwargs):
    creds = Credentials("u", password, options="source_username/source_password")
    return RegistryClient(stub.host, credentials=creds, sleep=lambda _s: None, **kwargs)


def test_bearer_flow_fetches_one_token_per_scope(stub_factory):
    stub = stub_factory()
    c = client(stub)
    manifest = c.get_manifest("a/b", "v1")
    assert manifest.is_index and c.base == f"http://{stub.host}", "loopback falls back to plain http"
    assert c.scheme == "bearer"
    c.get_manifest("a/b", "v1")
    assert len(stub.token_requests) == 1
    assert stub.token_requests[0]["scope"] == ["repository:a/b:pull"]
    assert stub.token_requests[0]["service"] == ["stub"]


def test_basic_flow(stub_factory):
    stub = stub_factory(scheme="basic")
    c = client(stub)
    assert c.get_manifest("a/b", "v1").is_index and c.scheme == "basic"
    assert stub.token_requests == []


def test_wrong_password_names_options_not_password(stub_factory):
    stub = stub_factory()
    with pytest.raises(RegistryAuthError) as err:
        client(stub, password="s3cr3t-value").get_manifest("a/b", "v1")
    text = str(err.value)
    assert "source_username/source_password" in text and "'u'" in text and "s3cr3t-value" not in text
    stub_basic = stub_factory(scheme="basic")
    with pytest.raises(RegistryAuthError) as err:
        client(stub_basic, password="s3cr3t-value").get_manifest("a/b", "v1")
    assert "rejected user 'u'" in str(err.value) and "s3cr3t-value" not in str(err.value)
    assert "s3cr3t-value" not in repr(Credentials("u", "s3cr3t-value"))


def test_retries_5xx_then_succeeds(stub_factory):
    stub = stub_factory(flaky=2)
    c = client(stub)
    assert c.get_manifest("a/b", "v1").is_index
    assert [s for _m, p, s in c.calls if p.endswith("/manifests/v1")].count(503) == 2


def test_retries_429_honouring_retry_after_and_dropped_connections(stub_factory):
    stub = stub_factory(flaky=1, flaky_status=429, drops=2)
    slept = []
    c = RegistryClient(stub.host, credentials=Credentials("u", "pw"), sleep=slept.append)
    assert c.get_manifest("a/b", "v1").is_index
    statuses = [s for _m, p, s in c.calls if p.endswith("/manifests/v1")]
    assert statuses[:3] == [None, None, 429] and 1.0 in slept, "Retry-After: 1 is honoured"


def test_gives_up_after_max_retries(stub_factory):
    stub = stub_factory(flaky=10)
    with pytest.raises(RegistryError) as err:
        client(stub, max_retries=2).get_manifest("a/b", "v1")
    assert "HTTP 503" in str(err.value)


def test_plain_http_refused_for_remote_hosts_unless_insecure(monkeypatch):
    import requests  # pylint: disable=import-outside-toplevel

    remote = RegistryClient("registry.example.com", sleep=lambda _s: None, max_retries=1)
    assert not remote.allow_http and remote.verify is True
    insecure = RegistryClient("registry.example.com", insecure=True)
    assert insecure.allow_http and insecure.verify is False
    tried = []

    def refuse(url, **_kwargs):  # no packet leaves the machine
        tried.append(url)
        raise requests.exceptions.SSLError("certificate verify failed")

    monkeypatch.setattr(remote.http, "get", refuse)
    with pytest.raises(RegistryError) as err:
        remote.ping()
    assert tried == ["https://registry.example.com/v2/"] * 2, "never http:// for a remote registry"
    assert "insecure_registries" in str(err.value)


SECRET = "s3cr3t-registry-pass"


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_credentials_a_hostile_registry_echoes_are_redacted(stub_factory, scheme):
    stub = stub_factory(scheme=scheme, password=SECRET, echo=True)
    with pytest.raises(RegistryAuthError) as denied:
        client(stub, password=SECRET).get_manifest("a/b", "v1")
    message = str(denied.value)
    assert "denied:" in message and "<redacted>" in message, message
    for secret in (SECRET, base64.b64encode(f"u:{SECRET}".encode()).decode(), "T0KEN"):
        assert secret not in message


def test_credentials_a_token_service_echoes_are_redacted(stub_factory):
    stub = stub_factory(scheme="bearer", password="right-password", echo=True)
    with pytest.raises(RegistryAuthError) as refused:
        client(stub, password=SECRET).get_manifest("a/b", "v1")
    message = str(refused.value)
    assert "refused the credentials of user 'u'" in message and "bad creds in Basic <redacted>" in message, message
    assert SECRET not in message and base64.b64encode(f"u:{SECRET}".encode()).decode() not in message
