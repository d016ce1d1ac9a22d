"""Google identity for the local control plane: service account keys, the OAuth 2.0 token endpoint, and
GKE's authentication and IAM authorization in front of the local kube-apiserver.

What it models, and where each behaviour comes from:

- **Service account keys** are JSON files as IAM's ``projects.serviceAccounts.keys.create`` returns them
  (type, project_id, private_key_id, private_key, client_email, client_id, token_uri, ...). ``token_uri``
  names this server, so google-auth (the modules) and golang.org/x/oauth2 (gke-gcloud-auth-plugin with
  ``--use_application_default_credentials``) mint tokens here without code changes.
- **Token endpoint** (``POST /token``): the JWT bearer grant of RFC 7523 as Google documents it
  ("Using OAuth 2.0 for Server to Server Applications": grant_type
  ``urn:ietf:params:oauth:grant-type:jwt-bearer``, an RS256 assertion with iss = the service account,
  aud = the token URI, scope = space-separated scopes, exp <= iat + 3600). The signature is checked
  with the key's public half; the answer is ``{access_token, expires_in, token_type: Bearer}``.
- **Kubernetes username of a Google token** (GKE "Authorize actions in clusters using RBAC",
  https://cloud.google.com/kubernetes-engine/docs/how-to/role-based-access-control): GKE identifies a
  Google account by its e-mail only when the token carries the ``userinfo.email`` scope; a service
  account token minted with ``cloud-platform`` alone is identified by the account's numeric unique ID,
  so RBAC bindings that name the e-mail do not match it. The API server asks ``POST /tokenreview``
  (Kubernetes webhook token authentication, authentication.k8s.io/v1 TokenReview).
- **IAM in front of RBAC** (same GKE page, "Interaction with Identity and Access Management": GKE
  checks RBAC first, then IAM): the API server runs ``--authorization-mode=Node,RBAC,Webhook`` and asks
  ``POST /authorize`` (authorization.k8s.io/v1 SubjectAccessReview) only when RBAC said no. A principal
  holding ``roles/container.admin`` in the project (GKE IAM roles: "full management of Kubernetes
  clusters and their Kubernetes API objects") is allowed everything; ``roles/container.clusterViewer``
  (container.clusters.get, what getCredentials needs) grants nothing inside the cluster.

Every token request and review is recorded, so tests can see which identity and scopes a client used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt

from local_stack.simulators.google_http import send_json, serve_http, stop_http

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
ADMIN_ROLES = frozenset({"roles/container.admin", "roles/owner"})
TOKEN_LIFETIME = 3600


@dataclass
class ServiceAccount:
    email: str
    project: str
    unique_id: str
    key_id: str
    private_pem: str
    public_pem: str
    roles: set = field(default_factory=set)

    def key_file(self, token_uri):
        return {
            "type": "service_account", "project_id": self.project, "private_key_id": self.key_id,
            "private_key": self.private_pem, "client_email": self.email, "client_id": self.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                    + urllib.parse.quote(self.email),
            "universe_domain": "googleapis.com",
        }


class GoogleIdentity:
    """Accounts, tokens and reviews; ``serve()`` exposes them over HTTP on 127.0.0.1."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.accounts = {}      # email -> ServiceAccount
        self.tokens = {}        # access token -> (email, scopes, expiry)
        self.token_requests = []  # (email, scopes)
        self.reviews = []       # ("authn"|"authz", username, allowed/authenticated, detail)
        self.server = None
        self.url = None

    # ------------------------------------------------------------------ accounts
    def service_account(self, email, roles=()):
        """Create (or load from the folder) a service account with a key; returns its key file path."""
        project = email.split("@", 1)[1].split(".", 1)[0]
        path = self.folder / f"{email.split('@', 1)[0]}-key.json"
        with self.lock:
            if path.exists():
                data = json.loads(path.read_text())
                private_pem = data["private_key"]
                key = serialization.load_pem_private_key(private_pem.encode(), password=None)
                unique_id, key_id = data["client_id"], data["private_key_id"]
            else:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()).decode()
                # IAM's uniqueId: 21 decimal digits; private_key_id: 40 hex digits.
                unique_id = str(10 ** 20 + int(hashlib.sha256(email.encode()).hexdigest(), 16) % (9 * 10 ** 20))
                key_id = secrets.token_hex(20)
            public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            account = ServiceAccount(email, project, unique_id, key_id, private_pem, public_pem, set(roles))
            self.accounts[email] = account
        if self.url:
            self._write_key(account, path)
        return path

    def _write_key(self, account, path):
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(account.key_file(f"{self.url}/token"), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)

    def grant(self, email, role):
        with self.lock:
            self.accounts[email].roles.add(role)

    def revoke(self, email, role):
        with self.lock:
            self.accounts[email].roles.discard(role)

    def mint(self, email, scopes):
        """A token for email, as the token endpoint would give it (for tests and the stack's own calls)."""
        token = "ya29.local-" + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (email, tuple(scopes), time.time() + TOKEN_LIFETIME)
        return token

    def identity_of(self, token):
        """(account, scopes) for a live token, else None."""
        with self.lock:
            entry = self.tokens.get(token)
            if entry is None or entry[2] < time.time():
                return None
            return self.accounts.get(entry[0]), entry[1]

    def _account_of_username(self, username):
        with self.lock:
            for account in self.accounts.values():
                if username in (account.email, account.unique_id):
                    return account
        return None

    # ------------------------------------------------------------------ endpoints
    def token_endpoint(self, form):
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type",
                         "error_description": f"Invalid grant_type: {form.get('grant_type')}"}
        assertion = form.get("assertion", "")
        try:
            unverified = google_jwt.decode(assertion, verify=False)
        except (ValueError, google_auth_exceptions.GoogleAuthError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token"}
        account = self.accounts.get(unverified.get("iss"))
        if account is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
        try:
            # Google documents aud as always https://oauth2.googleapis.com/token (google-auth sends that);
            # golang.org/x/oauth2 sends the key file's token_uri, which is that same URL for a real key.
            claims = google_jwt.decode(assertion, certs=account.public_pem,
                                       audience=[GOOGLE_TOKEN_AUDIENCE, f"{self.url}/token"])
        except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"}
        if claims.get("exp", 0) - claims.get("iat", 0) > TOKEN_LIFETIME:
            return 400, {"error": "invalid_grant",
                         "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes)"}
        scopes = tuple(claims.get("scope", "").split())
        if not scopes:
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience provided."}
        token = self.mint(account.email, scopes)
        with self.lock:
            self.token_requests.append((account.email, scopes))
        return 200, {"access_token": token, "expires_in": TOKEN_LIFETIME - 1, "token_type": "Bearer"}

    def token_review(self, review):
        token = (review.get("spec") or {}).get("token", "")
        found = self.identity_of(token)
        status = {"authenticated": False}
        if found and found[0] is not None:
            account, scopes = found
            username = account.email if EMAIL_SCOPE in scopes else account.unique_id
            status = {"authenticated": True,
                      "user": {"username": username, "uid": account.unique_id, "groups": ["system:authenticated"]}}
        with self.lock:
            self.reviews.append(("authn", status.get("user", {}).get("username"), status["authenticated"], ""))
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}

    def access_review(self, review):
        spec = review.get("spec") or {}
        account = self._account_of_username(spec.get("user", ""))
        allowed = bool(account and account.roles & ADMIN_ROLES)
        status = {"allowed": allowed}
        if allowed:
            status["reason"] = f"IAM: {sorted(account.roles & ADMIN_ROLES)[0]} on project {account.project}"
        attrs = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
        with self.lock:
            self.reviews.append(("authz", spec.get("user"), allowed, json.dumps(attrs, sort_keys=True)))
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": status}

    # ------------------------------------------------------------------ server
    def serve(self):
        self.server, self.url = serve_http(type("Handler", (_Handler,), {"identity": self}))
        for account in list(self.accounts.values()):
            self._write_key(account, self.folder / f"{account.email.split('@', 1)[0]}-key.json")
        return self

    def close(self):
        stop_http(self.server)

    def webhook_kubeconfig(self, path, endpoint):
        """A kubeconfig for the API server's --authentication-token-webhook / --authorization-webhook."""
        Path(path).write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "google", "cluster": {"server": f"{self.url}/{endpoint}"}}],
            "users": [{"name": "kube-apiserver", "user": {}}],
            "contexts": [{"name": "google", "context": {"cluster": "google", "user": "kube-apiserver"}}],
            "current-context": "google",
        }))
        return path


class _Handler(BaseHTTPRequestHandler):
    identity: GoogleIdentity = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        return

    def _reply(self, status, body):
        send_json(self, status, body)

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            self._reply(*self.identity.token_endpoint(form))
        elif path == "/tokenreview":
            self._reply(200, self.identity.token_review(json.loads(raw or b"{}")))
        elif path == "/authorize":
            self._reply(200, self.identity.access_review(json.loads(raw or b"{}")))
        else:
            self._reply(404, {"error": {"code": 404, "message": f"no such endpoint {path}"}})

    def do_GET(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path)
        if path.path == "/tokeninfo":
            token = dict(urllib.parse.parse_qsl(path.query)).get("access_token", "")
            found = self.identity.identity_of(token)
            if not found or found[0] is None:
                self._reply(400, {"error": "invalid_token", "error_description": "Invalid Value"})
                return
            account, scopes = found
            body = {"azp": account.unique_id, "aud": account.unique_id, "scope": " ".join(scopes),
                    "expires_in": TOKEN_LIFETIME}
            if EMAIL_SCOPE in scopes:
                body.update(email=account.email, email_verified="true")
            self._reply(200, body)
            return
        self._reply(404, {"error": {"code": 404, "message": "not found"}})


def b64(data):
    return base64.b64encode(data).decode()
