"""Start Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1 with its own config.

Used by the registry tests' fixtures (conftest.py); importable by anything else that needs a real
local registry (``from local_stack.registry import start_registry``). Requests are counted at the
server from its access log.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from local_stack.access_log import AccessLog
from local_stack.images import digest_of
from local_stack.programs import find_program

ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d+)')
REGISTRY_BINARY = "docker-registry"


class RegistryMissing(RuntimeError):
    """The docker-registry binary is not installed."""


class RegistryStartError(RuntimeError):
    """docker-registry exited or did not answer in time."""


def registry_binary():
    return find_program(REGISTRY_BINARY, RegistryMissing(
        "the Debian package docker-registry (the CNCF distribution registry) is not installed: run `make bootstrap` "
        "(scripts/bootstrap.sh installs it with apt-get)"), also_in=("/usr/sbin",))


def bcrypt_hash(password):
    """A bcrypt hash for htpasswd, or None when neither the crypt module nor bcrypt can make one."""
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # pylint: disable=import-outside-toplevel,deprecated-module
        except ImportError:
            return None
    value = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    return value if value and value.startswith("$2") else None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry(AccessLog):
    """One running registry: its address, credentials, access log, and push/read helpers for tests."""

    line = ACCESS_LINE

    def __init__(self, host, log_file, proc, username=None, password=None, token_service=None):
        super().__init__(log_file)
        self.host = host
        self.url = f"http://{host}"
        self.proc = proc
        self.username = username
        self.password = password
        self.token_service = token_service
        self._tokens = {}

    # --- counting at the server: mark(), requests(), reads(), writes() (AccessLog) ------------
    def blob_writes(self):
        return [r for r in self.writes() if "/blobs/" in r[1]]

    def blob_uploads_finished(self):
        """The PUT ...?digest= requests that completed an upload: one per blob sent."""
        return [r for r in self.writes() if r[0] == "PUT" and "/blobs/uploads/" in r[1] and r[2] == 201]

    # --- direct access for arranging and checking ------------------------------------------------
    def _auth_header(self, repository):
        if self.token_service is not None:
            token = self.token_service.token(self.username, [f"repository:{repository}:pull,push"])
            return {"Authorization": f"Bearer {token}"}
        if self.username:
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def call(self, method, path, repository, data=None, headers=None):
        request = urllib.request.Request(self.url + path if path.startswith("/") else path, data=data, method=method,
                                         headers={**self._auth_header(repository), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback registry
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def push_blob(self, repository, data):
        status, headers, _body = self.call("POST", f"/v2/{repository}/blobs/uploads/", repository)
        assert status == 202, status
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        status, _headers, body = self.call("PUT", f"{location}{sep}digest={digest_of(data)}", repository,
                                           data=data, headers={"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)

    def push_manifest(self, repository, ref, raw, media_type):
        status, _headers, body = self.call("PUT", f"/v2/{repository}/manifests/{ref}", repository, data=raw,
                                           headers={"Content-Type": media_type})
        assert status == 201, (status, body)

    def push_image(self, repository, tag, image):
        """Push an Image or an Index (children first) with all its blobs."""
        for blob in image.blobs:
            self.push_blob(repository, blob.data)
        for child in getattr(image, "images", []):
            self.push_manifest(repository, child.digest, child.manifest, child.media_type)
        self.push_manifest(repository, tag, image.manifest, image.media_type)

    def manifest(self, repository, ref):
        accept = ", ".join(["application/vnd.oci.image.index.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json",
                            "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.v2+json"])
        status, headers, body = self.call("GET", f"/v2/{repository}/manifests/{ref}", repository,
                                          headers={"Accept": accept})
        return (body, headers.get("Content-Type")) if status == 200 else (None, None)

    def has_blob(self, repository, digest):
        return self.call("HEAD", f"/v2/{repository}/blobs/{digest}", repository)[0] == 200

    def tags(self, repository):
        status, _headers, body = self.call("GET", f"/v2/{repository}/tags/list", repository)
        return json.loads(body).get("tags") or [] if status == 200 else []


def port_is_free(port):
    """Nothing listens on 127.0.0.1:port (connections of an earlier run in TIME_WAIT do not count: Go's
    listener sets SO_REUSEADDR, as this check does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_registry(run_dir, auth=None, port=None):
    """Start docker-registry with its own config under run_dir; auth is None, ('htpasswd', path) or ('token', {...}).

    port: the one to listen on (else a free one)."""
    binary = registry_binary()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    lines = [
        "version: 0.1",
        "log:", "  level: warn", "  formatter: text", "  accesslog:", "    disabled: false",
        "storage:", "  filesystem:", f"    rootdirectory: {run_dir / 'data'}", "  delete:", "    enabled: true",
        "  maintenance:", "    uploadpurging:", "      enabled: false",
        "http:", f"  addr: 127.0.0.1:{port}", f"  secret: {secrets.token_hex(16)}",
    ]
    if auth and auth[0] == "htpasswd":
        lines += ["auth:", "  htpasswd:", "    realm: triton-fil-test", f"    path: {auth[1]}"]
    elif auth and auth[0] == "token":
        opts = auth[1]
        lines += ["auth:", "  token:", f"    realm: {opts['realm']}", f"    service: {opts['service']}",
                  f"    issuer: {opts['issuer']}", f"    rootcertbundle: {opts['rootcertbundle']}"]
    config = run_dir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log_file = run_dir / "registry.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):  # noqa: S310
                break
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                break
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RegistryStartError(f"docker-registry did not start on 127.0.0.1:{port}: "
                                     f"{log_file.read_text()[-2000:]}")
        time.sleep(0.05)
    return f"127.0.0.1:{port}", log_file, proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
