"""An Artifact Registry simulator: projects.locations.repositories create/get/patch/delete, in memory.

Request bodies are validated against Google's artifactregistry v1 discovery document (unknown field
or wrong type -> 400 INVALID_ARGUMENT); output-only fields and unknown updateMask paths are refused
too. create and delete answer a long-running operation that is done on its first poll. Every
request is recorded as (method, path, query) so tests can count writes.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

try:
    from .discovery import Discovery
    from .google_http import send_json, serve_http, stop_http
except ImportError:  # run as a script
    from discovery import Discovery  # type: ignore[no-redef]
    from google_http import send_json, serve_http, stop_http  # type: ignore[no-redef]

OUTPUT_ONLY = {"createTime", "updateTime", "registryUri", "sizeBytes", "satisfiesPzs", "satisfiesPzi"}
MASK_PATHS = {"description", "labels", "docker_config", "docker_config.immutable_tags", "cleanup_policies",
              "cleanup_policy_dry_run", "vulnerability_scanning_config"}


class ApiError(Exception):
    def __init__(self, code, status, message):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


class ArtifactRegistrySimulator:
    def __init__(self):
        self.discovery = Discovery("artifactregistry.v1")
        self.repositories = {}
        self.operations = {}
        self.requests = []
        self._lock = threading.Lock()
        self._server, self.url = serve_http(self._handler())

    def close(self):
        stop_http(self._server)

    def writes(self):
        return [r for r in self.requests if r[0] not in ("GET", "HEAD")]

    # --- API -----------------------------------------------------------------------------------
    def handle(self, method, path, query, body):
        if path.startswith("/v1/") and "/operations/" in path and method == "GET":
            return self._operation(path[len("/v1/"):])
        found = self.discovery.match(method, path)
        if not found or not found[0].startswith("artifactregistry.projects.locations.repositories."):
            raise ApiError(404, "NOT_FOUND", f"simulator: no method for {method} {path}")
        method_id, params, request_schema = found
        if request_schema:
            problems = self.discovery.validate(request_schema, body)
            problems += [f"Output only field '{key}' must not be set" for key in OUTPUT_ONLY & set(body)]
            if problems:
                raise ApiError(400, "INVALID_ARGUMENT", "; ".join(problems))
        action = method_id.rsplit(".", 1)[1]
        project, location = params[0], params[1]
        parent = f"projects/{project}/locations/{location}"
        if action == "create":
            repo_id = (query.get("repositoryId") or [""])[0]
            if not repo_id:
                raise ApiError(400, "INVALID_ARGUMENT", "repositoryId is required")
            if body.get("format") in (None, "FORMAT_UNSPECIFIED"):
                raise ApiError(400, "INVALID_ARGUMENT", "format is required")
            name = f"{parent}/repositories/{repo_id}"
            if name in self.repositories:
                raise ApiError(409, "ALREADY_EXISTS", f"the repository already exists: {name}")
            now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            repo = {**body, "name": name, "createTime": now, "updateTime": now, "sizeBytes": "0",
                    "registryUri": f"{location}-{body['format'].lower()}.pkg.dev/{project}/{repo_id}",
                    "mode": body.get("mode", "STANDARD_REPOSITORY")}
            return self._start(parent, lambda: self.repositories.__setitem__(name, repo), repo)
        name = f"{parent}/repositories/{params[2]}"
        repo = self.repositories.get(name)
        if repo is None:
            raise ApiError(404, "NOT_FOUND", f"Requested entity was not found. ({name})")
        if action == "get":
            return repo
        if action == "delete":
            return self._start(parent, lambda: self.repositories.pop(name, None), None)
        if action == "patch":
            mask = [p for p in (query.get("updateMask") or [""])[0].split(",") if p]
            unknown = [p for p in mask if p not in MASK_PATHS]
            if not mask or unknown:
                raise ApiError(400, "INVALID_ARGUMENT", f"invalid updateMask {mask}")
            for path_ in mask:
                top = {"docker_config": "dockerConfig"}.get(path_.split(".")[0], path_.split(".")[0])
                top = {"cleanup_policies": "cleanupPolicies"}.get(top, top)
                if top in body:
                    repo[top] = body[top]
                else:
                    repo.pop(top, None)
            repo["updateTime"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            return repo
        raise ApiError(501, "UNIMPLEMENTED", f"simulator does not implement {method_id}")

    def _start(self, parent, apply, response):
        op_name = f"{parent}/operations/op-{len(self.operations) + 1}"
        self.operations[op_name] = (apply, response)
        return {"name": op_name, "done": False}

    def _operation(self, name):
        if name not in self.operations:
            raise ApiError(404, "NOT_FOUND", f"operation {name} not found")
        apply, response = self.operations[name]
        apply()
        done = {"name": name, "done": True}
        if response is not None:
            done["response"] = {"@type": "type.googleapis.com/google.devtools.artifactregistry.v1.Repository",
                                **response}
        return done

    def _handler(self):
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _serve(self, method):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                sim.requests.append((method, parts.path, query))
                try:
                    body = json.loads(raw) if raw else {}
                    with sim._lock:  # pylint: disable=protected-access
                        status, answer = 200, sim.handle(method, parts.path, query, body)
                except ApiError as exc:
                    status, answer = exc.code, {"error": {"code": exc.code, "status": exc.status,
                                                          "message": exc.message}}
                except ValueError:
                    status, answer = 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                     "message": "Invalid JSON payload received."}}
                send_json(self, status, answer)

            def do_GET(self):  # noqa: N802
                self._serve("GET")

            def do_POST(self):  # noqa: N802
                self._serve("POST")

            def do_PATCH(self):  # noqa: N802
                self._serve("PATCH")

            def do_DELETE(self):  # noqa: N802
                self._serve("DELETE")

        return Handler
