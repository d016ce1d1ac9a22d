# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""A client for the OCI distribution API (v2) on requests.

Authentication follows the registry's own WWW-Authenticate challenge: Basic, or Bearer tokens from
the challenge's realm (service + scopes, the credentials sent to the realm with Basic). Google
registries take the user ``oauth2accesstoken`` with a google-auth access token as password; that
is decided by the caller through ``Credentials``.

Idempotent requests (GET, HEAD, manifest PUT, upload start, token) are retried on 429, 5xx and
dropped connections with jittered exponential backoff (Retry-After honoured). Upload PATCH/PUT are
not retried one by one — a failed blob upload is restarted whole by the caller.

Plain HTTP is used only for loopback registries or registries the caller marks insecure; for
those it is tried first (one round trip instead of a failed TLS handshake and a second request),
and HTTPS follows when the port turns out to speak TLS. Credentials are never put in a message.

Blobs travel as streams: ``upload_stream`` sends a request body that is read from the source while
it is sent (known length, so no chunked encoding is needed), and nothing holds a whole layer.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from urllib.parse import urljoin, urlsplit

from ansible_collections.rapids.triton_fil.plugins.module_utils.backoff import RETRYABLE_STATUS, Backoff
from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.redact import basic_credential, scrub
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.auth import (
    pick_challenge, pull_scope, push_scope,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    api_host, is_google_registry, is_loopback,
)

try:
    import requests
    import urllib3
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
MANIFEST_TYPES = INDEX_TYPES + IMAGE_TYPES
SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT = ", ".join(MANIFEST_TYPES)
USER_AGENT = "rapids.triton_fil-registry/1"


class RegistryError(TritonFilError):
    """A failure with a message fit for fail_json: it names the registry, the option and the fix."""


class RegistryAuthError(RegistryError):
    """The registry or its token service refused the credentials (or asked for some and had none)."""


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def detect_media_type(body, content_type):
    """The manifest's media type: the served Content-Type when it is one, else the body says."""
    served = (content_type or "").split(";")[0].strip()
    if served in MANIFEST_TYPES or served in SCHEMA1_TYPES:
        return served
    declared = body.get("mediaType") if isinstance(body, dict) else None
    if declared:
        return declared
    if isinstance(body, dict) and body.get("schemaVersion") == 1:
        return SCHEMA1_TYPES[1]
    if isinstance(body, dict) and "manifests" in body:
        return OCI_INDEX
    return OCI_MANIFEST


class Manifest:
    """A manifest exactly as served: its bytes, media type and digest (sha256 of the bytes)."""

    def __init__(self, raw, media_type, digest=None):
        self.raw = raw
        self.body = json.loads(raw)
        self.media_type = media_type
        self.digest = digest or sha256_digest(raw)

    @classmethod
    def from_bytes(cls, raw, content_type=None):
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"the registry served a manifest that is not JSON: {exc}") from exc
        return cls(raw, detect_media_type(body, content_type))

    @property
    def is_index(self):
        return self.media_type in INDEX_TYPES

    @property
    def children(self):
        return list(self.body.get("manifests") or []) if self.is_index else []

    @property
    def config(self):
        return self.body.get("config")

    @property
    def blobs(self):
        """Config and layer descriptors to copy; foreign/non-distributable layers (with urls) are not."""
        if self.is_index:
            return []
        found = [self.body["config"]] if self.body.get("config") else []
        found += [layer for layer in self.body.get("layers") or [] if not layer.get("urls")]
        return found

    def __len__(self):
        return len(self.raw)


class Credentials:
    """Username/password for one registry; the password may come from a callable (a google-auth token)."""

    def __init__(self, username=None, password=None, password_source=None, options="username/password"):
        self.username = username or None
        self._password = password
        self._password_source = password_source
        self.options = options  # what the user sets to fix a refusal, for messages

    @property
    def present(self):
        return bool(self.username)

    def pair(self):
        """(username, password) or None; a password source is asked every time (tokens expire)."""
        if not self.username:
            return None
        if self._password_source is not None:
            return self.username, self._password_source() or ""
        return self.username, self._password or ""

    def __repr__(self):  # never show the password
        return f"Credentials(username={self.username!r})"


ANONYMOUS = Credentials()


def _registry_error_text(response):
    """The distribution error body's codes and messages, or the start of a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:300]
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    if isinstance(body, dict) and ("details" in body or "message" in body):
        return str(body.get("message") or body.get("details"))
    return json.dumps(body)[:300]


class RegistryClient:
    """One registry host; ``role`` (source/destination) names the module options in messages."""

    def __init__(self, registry, *, credentials=None, insecure=False, timeout=60.0, max_retries=6,
                 role="source", sleep=time.sleep, rng=random.random, base_delay=0.5, max_delay=32.0):
        if not HAS_REQUESTS:
            raise RegistryError(f"the requests library is required: {REQUESTS_IMPORT_ERROR}")
        self.registry = registry
        self.host = api_host(registry)
        self.role = role
        self.credentials = credentials or ANONYMOUS
        self.insecure = bool(insecure)
        self.allow_http = self.insecure or is_loopback(self.host)
        self.verify = not self.insecure
        self.timeout = float(timeout or 60)
        self.max_retries = int(max_retries if max_retries is not None else 6)
        self.retry = Backoff(sleep=sleep, rng=rng, base_delay=base_delay, max_delay=max_delay)
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        if self.insecure:  # asked for explicitly (insecure_registries): no warning on every request
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.base = None
        self.scheme = None  # the auth scheme the registry asked for: "bearer", "basic" or None
        self.challenge = {}
        self._tokens = {}
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._secrets = set()  # every password, Basic credential and token sent: never in a message
        self.calls = []  # (method, path, status) of every attempt, for results and tests

    # --- transport -------------------------------------------------------------------------
    def _record(self, method, url, status):
        self.calls.append((method, urlsplit(url).path, status))

    def _where(self):
        return f"{self.role} registry {self.registry}"

    def _sent(self, pair=None, token=None):
        """Remember credentials put on the wire, to scrub them from whatever a server answers."""
        if pair:
            self._secrets.update((pair[1], basic_credential(*pair)))
        if token:
            self._secrets.add(token)

    def _error_text(self, response):
        """The server's error text, with any credential it echoes (a hostile or broken registry) redacted."""
        return scrub(_registry_error_text(response), self._secrets)

    def _schemes(self):
        """Plain HTTP first where it is allowed (loopback, insecure_registries), HTTPS after it; else HTTPS only."""
        return ["http", "https"] if self.allow_http else ["https"]

    @staticmethod
    def _speaks_tls(scheme, response):
        """A TLS port answering plain HTTP (Go's server: 400 'Client sent an HTTP request to an HTTPS server')."""
        return (scheme == "http" and response.status_code == 400
                and "Docker-Distribution-API-Version" not in response.headers)

    def ping(self):
        """GET /v2/ to choose the scheme and learn the auth scheme."""
        with self._lock:
            if self.base:
                return
            schemes = self._schemes()
            last = None
            for attempt in range(self.max_retries + 1):
                retry_response = None
                for scheme in schemes:
                    url = f"{scheme}://{self.host}/v2/"
                    try:
                        response = self.http.get(url, timeout=self.timeout, verify=self.verify)
                    except (requests.ConnectionError, requests.Timeout) as exc:
                        self._record("GET", url, None)
                        last = exc
                        continue
                    self._record("GET", url, response.status_code)
                    if self._speaks_tls(scheme, response):
                        last = f"{url} answered HTTP 400 (the port speaks TLS)"
                        continue
                    if response.status_code in RETRYABLE_STATUS:
                        retry_response = response
                        last = f"HTTP {response.status_code}"
                        break
                    self.base = f"{scheme}://{self.host}"
                    if response.status_code == 401:
                        self._learn(response)
                    return
                if attempt < self.max_retries:
                    self.retry.wait(attempt, retry_response)
            hint = "" if self.allow_http else (
                f"; if it serves plain HTTP or a self-signed certificate, list {self.host} in insecure_registries")
            tried = " or ".join(f"{scheme}://{self.host}/v2/" for scheme in schemes)
            raise RegistryError(f"{self._where()} is unreachable at {tried}: {last}{hint}")

    def _learn(self, response):
        challenge = pick_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            raise RegistryAuthError(f"{self._where()} answered 401 without a Basic or Bearer challenge "
                                    f"(WWW-Authenticate: {response.headers.get('WWW-Authenticate')!r})")
        self.scheme, self.challenge = challenge

    def _realm_allowed(self, realm):
        parts = urlsplit(realm)
        if parts.scheme == "https":
            return True
        return parts.scheme == "http" and (self.insecure or is_loopback(parts.netloc))

    def _token(self, scopes, force=False):
        key = tuple(sorted(set(scopes)))
        with self._token_lock:  # one fetch per scope set, even with parallel blob copies
            if key in self._tokens and not force:
                return self._tokens[key]
            token = self._fetch_token(key)
            self._tokens[key] = token
            return token

    def _fetch_token(self, key):
        realm = self.challenge.get("realm")
        if not realm or not self._realm_allowed(realm):
            raise RegistryAuthError(f"{self._where()} sent a Bearer challenge with an unusable realm {realm!r} "
                                    "(plain http token services are accepted only on loopback or insecure_registries)")
        params = []
        if self.challenge.get("service"):
            params.append(("service", self.challenge["service"]))
        params += [("scope", scope) for scope in key]
        pair = self.credentials.pair()
        if pair:
            params.append(("account", pair[0]))
            self._sent(pair=pair)
        response = self._send("GET", realm, params=params, auth=pair, retry=True, authorize=False,
                              expected=(200,), allow=(400, 401, 403), context="token")
        if response.status_code != 200:
            detail = self._error_text(response)
            if pair:
                raise RegistryAuthError(
                    f"{self._where()}: its token service {realm} refused the credentials of user {pair[0]!r} "
                    f"(HTTP {response.status_code}: {detail}) — check {self.credentials.options}")
            raise RegistryAuthError(
                f"{self._where()}: its token service {realm} refused an anonymous token for {', '.join(key)} "
                f"(HTTP {response.status_code}: {detail}) — set {self.credentials.options}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RegistryError(f"{self._where()}: the token service {realm} answered non-JSON") from exc
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"{self._where()}: the token service {realm} answered without a token")
        self._sent(token=token)
        return token

    def _authorization(self, scopes, force=False):
        if self.scheme == "basic":
            pair = self.credentials.pair()
            if not pair:
                return None
            self._sent(pair=pair)
            return "Basic " + basic_credential(*pair)
        if self.scheme == "bearer":
            return "Bearer " + self._token(scopes, force=force)
        return None

    def _send(self, method, url, *, expected, allow=(), retry=True, authorize=True, scopes=(), context=None,
              headers=None, auth=None, **kwargs):
        attempt, reauthed, force = 0, False, False
        scopes = list(scopes)
        while True:
            sent = self._request_headers(url, headers, authorize, scopes, force)
            force = False
            try:
                response = self.http.request(method, url, headers=sent, auth=auth, timeout=self.timeout,
                                             verify=self.verify, allow_redirects=method in ("GET", "HEAD"), **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._record(method, url, None)
                if retry and attempt < self.max_retries:
                    self.retry.wait(attempt)
                    attempt += 1
                    continue
                raise RegistryError(f"{self._where()}: {method} {urlsplit(url).path} failed after {attempt + 1} "
                                    f"attempts: {type(exc).__name__}: {exc}") from exc
            self._record(method, url, response.status_code)
            status = response.status_code
            if status == 401 and authorize and not reauthed and status not in allow:
                reauthed = True
                scopes, force = self._reauthorize(response, scopes, url, context)
                continue
            if status in expected or status in allow:
                return response
            if status in RETRYABLE_STATUS and retry and attempt < self.max_retries:
                self.retry.wait(attempt, response)
                attempt += 1
                continue
            raise self._refusal(response, method, url, context)

    def _request_headers(self, url, headers, authorize, scopes, force):
        """The headers for one attempt: the caller's, plus Authorization when this registry's host is asked."""
        sent = dict(headers or {})
        if authorize and urlsplit(url).netloc == self.host:
            value = self._authorization(scopes, force=force)
            if value:
                sent["Authorization"] = value
        return sent

    def _reauthorize(self, response, scopes, url, context):
        """After a first 401: learn the challenge and return the (scopes, force a new token) to retry with.

        Raises RegistryAuthError when there is nothing to retry with (basic auth, no credentials)."""
        self._learn(response)
        if self.scheme == "bearer":
            wanted = self.challenge.get("scope")
            if wanted:
                scopes = sorted(set(scopes) | set(wanted.split(" ")))
            return scopes, True
        if self.credentials.present:
            return scopes, False
        raise RegistryAuthError(f"{self._where()} requires credentials ({context or urlsplit(url).path}) "
                                f"— set {self.credentials.options}")

    def _refusal(self, response, method, url, context):
        """The error for a final answer that is neither expected nor allowed."""
        status = response.status_code
        detail = self._error_text(response)
        what = context or f"{method} {urlsplit(url).path}"
        if status == 401:
            who = f"user {self.credentials.username!r}" if self.credentials.present else "anonymous access"
            return RegistryAuthError(f"{self._where()} rejected {who} for {what} (HTTP 401: {detail}) "
                                     f"— check {self.credentials.options}")
        if status == 403:
            return RegistryAuthError(f"{self._where()} denied {what} (HTTP 403: {detail}) — the credentials in "
                                     f"{self.credentials.options} lack permission for this repository")
        return RegistryError(f"{self._where()}: {what} answered HTTP {status}: {detail}")

    def request(self, method, path, *, scopes, expected=(200,), allow=(), retry=True, context=None, **kwargs):
        self.ping()
        url = urljoin(self.base + "/", path)
        return self._send(method, url, expected=expected, allow=allow, retry=retry, scopes=scopes,
                          context=context, **kwargs)

    # --- scopes --------------------------------------------------------------------------------
    def scopes(self, repository, *extra):
        own = push_scope(repository) if self.role == "destination" else pull_scope(repository)
        return [own, *extra]

    # --- manifests ---------------------------------------------------------------------------
    def get_manifest(self, repository, ref):
        """The manifest as served, or None when the registry does not have it."""
        response = self.request("GET", f"/v2/{repository}/manifests/{ref}", scopes=self.scopes(repository),
                                headers={"Accept": ACCEPT}, allow=(404,),
                                context=f"manifest {repository}:{ref}" if ":" not in ref else f"manifest {repository}@{ref}")
        if response.status_code == 404:
            return None
        manifest = Manifest.from_bytes(response.content, response.headers.get("Content-Type"))
        if manifest.media_type in SCHEMA1_TYPES:
            raise RegistryError(f"{self._where()}: {repository}:{ref} is a Docker schema 1 manifest, which cannot be "
                                "copied without changing its digest; push it again with a current Docker or buildx")
        if manifest.media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{self._where()}: {repository}:{ref} has media type {manifest.media_type!r}, "
                                "not an image manifest or index")
        return manifest

    def manifest_digest(self, repository, ref):
        """Digest that a tag or digest resolves to (HEAD, GET if the registry omits the header); None if absent."""
        response = self.request("HEAD", f"/v2/{repository}/manifests/{ref}", scopes=self.scopes(repository),
                                headers={"Accept": ACCEPT}, allow=(404,), context=f"manifest {repository}:{ref}")
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        manifest = self.get_manifest(repository, ref)
        return manifest.digest if manifest else None

    def put_manifest(self, repository, ref, manifest):
        response = self.request("PUT", f"/v2/{repository}/manifests/{ref}", scopes=self.scopes(repository),
                                headers={"Content-Type": manifest.media_type}, data=manifest.raw,
                                expected=(200, 201, 202), context=f"manifest upload {repository}:{ref}")
        served = response.headers.get("Docker-Content-Digest")
        if served and served != manifest.digest:
            raise RegistryError(f"{self._where()} stored {repository}:{ref} as {served}, not {manifest.digest}: "
                                "the registry rewrote the manifest")
        return manifest.digest

    # --- blobs -----------------------------------------------------------------------------
    def blob_size(self, repository, digest, read_only=False):
        """Size of a blob the repository has, or None; read_only asks with a pull scope only (another repository)."""
        scopes = [pull_scope(repository)] if read_only else self.scopes(repository)
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=scopes,
                                allow=(404,) + ((401, 403) if read_only else ()), context=f"blob {digest}")
        if response.status_code in (401, 403):
            return None  # a repository these credentials cannot read: no mount source
        if response.status_code == 404:
            return None
        length = response.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else -1

    def get_blob(self, repository, digest):
        """A streaming response with the blob's bytes (redirects to storage are followed)."""
        return self.request("GET", f"/v2/{repository}/blobs/{digest}", scopes=self.scopes(repository),
                            stream=True, context=f"blob download {digest}")

    def mount_blob(self, repository, digest, from_repository):
        """Try a cross-repository mount: (True, None) when mounted, else (False, upload location)."""
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                                scopes=self.scopes(repository, pull_scope(from_repository)),
                                params={"mount": digest, "from": from_repository}, expected=(201, 202),
                                context=f"blob mount {digest} from {from_repository}")
        if response.status_code == 201:
            return True, None
        return False, self._location(response)

    def start_upload(self, repository):
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=self.scopes(repository),
                                expected=(202,), context="blob upload start")
        return self._location(response)

    def upload_stream(self, repository, location, body, offset=None):
        """PATCH one streamed body (an iterable with a length); offset given: a Content-Range chunk of a larger blob.

        One PATCH for the whole blob is what docker push and skopeo send; chunks are for registries that
        limit request sizes (chunk_size).
        """
        headers = {"Content-Type": "application/octet-stream"}
        if offset is not None:
            headers["Content-Range"] = f"{offset}-{offset + len(body) - 1}"
        response = self.request("PATCH", location, scopes=self.scopes(repository), data=body, retry=False,
                                headers=headers, expected=(202,), context="blob upload")
        return self._location(response)

    def cancel_upload(self, location, repository):
        """DELETE an upload that will not be finished (best effort: the registry also expires it)."""
        try:
            self.request("DELETE", location, scopes=self.scopes(repository), retry=False,
                         expected=(204,), allow=(400, 404, 405), context="blob upload cancel")
        except RegistryError:
            pass

    def finish_upload(self, repository, location, digest, data=b""):
        self.request("PUT", location, scopes=self.scopes(repository), data=data, params={"digest": digest},
                     headers={"Content-Type": "application/octet-stream"}, retry=False, expected=(201, 204),
                     context=f"blob upload {digest}")

    def _location(self, response):
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self._where()} started an upload without a Location header")
        return urljoin(self.base + "/", location)

    @property
    def write_calls(self):
        return [c for c in self.calls if c[0] not in ("GET", "HEAD")]


def google_token_source(params, credentials_hint):
    """A callable giving a google-auth access token for Google registries, the session created on first use.

    credentials_hint names the module's own username/password options for the auth_kind=anonymous message.
    """
    state = {}

    def token():
        # google-auth is imported here, on the first Google registry call: other registries never load it.
        from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (  # pylint: disable=import-outside-toplevel
            GcpError, GcpSession,
        )
        try:
            if "session" not in state:
                state["session"] = GcpSession(params)
            value = state["session"].token()
        except GcpError as exc:
            raise RegistryError(f"a Google registry needs an access token and none could be obtained: {exc}") from exc
        if not value:
            raise RegistryError("a Google registry needs an access token but auth_kind=anonymous gives none — "
                                f"choose another auth_kind or set {credentials_hint}")
        return value

    return token


def registry_credentials(params, prefix, ref, google_token):
    """Credentials for one side: PREFIX_username/password, else a google-auth token for Google registries."""
    options = f"{prefix}_username/{prefix}_password"
    if params.get(f"{prefix}_username"):
        return Credentials(params[f"{prefix}_username"], params.get(f"{prefix}_password"), options=options)
    if is_google_registry(ref.api_host) and params.get("auth_kind") != "anonymous":
        return Credentials("oauth2accesstoken", password_source=google_token,
                           options=f"the Google credentials (auth_kind={params.get('auth_kind')}) or {options}")
    return Credentials(options=options)


def make_client(params, role, ref, google_token, prefix=None):
    """A RegistryClient for ``ref``; role is source or destination, prefix names the credential options."""
    insecure = set(params.get("insecure_registries") or [])
    credentials = registry_credentials(params, prefix or role, ref, google_token)
    return RegistryClient(ref.registry, credentials=credentials,
                          insecure=ref.registry in insecure or ref.api_host in insecure,
                          timeout=params.get("request_timeout") or 60, max_retries=params.get("max_retries"),
                          role=role)
