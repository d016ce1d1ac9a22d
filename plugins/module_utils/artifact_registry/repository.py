# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Artifact Registry repositories (REST v1 projects.locations.repositories) on top of GcpSession."""

from __future__ import annotations

import re
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change, diff_of
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError

DEFAULT_ENDPOINT = "https://artifactregistry.googleapis.com"
REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
LOCATION = re.compile(r"^[a-z]+(-[a-z]+[0-9]+)?$")
FORMATS = ["DOCKER", "MAVEN", "NPM", "PYTHON", "APT", "YUM", "GO", "KFP", "GENERIC"]


def endpoint_spec():
    return dict(type="str", fallback=(env_fallback, ["GCP_ARTIFACT_REGISTRY_ENDPOINT"]))


def check_names(params):
    """Problems with project/location/name, each naming its option and the fix."""
    problems = []
    if not params.get("project"):
        problems.append("project is required (or GCP_PROJECT) — the Google Cloud project that owns the repository")
    if not REPOSITORY_ID.match(params.get("name") or ""):
        problems.append(f"name {params.get('name')!r} is not a repository id — use 1-63 lowercase letters, digits "
                        "or '-', starting with a letter (for example 'triton')")
    if not LOCATION.match(params.get("location") or ""):
        problems.append(f"location {params.get('location')!r} is not a location — use a region such as "
                        "'us-central1' or a multi-region such as 'us'")
    return problems


def registry_host(location, fmt="DOCKER"):
    return f"{location}-{fmt.lower()}.pkg.dev"


class ArtifactRegistryClient:
    def __init__(self, session, endpoint=None, *, operation_timeout=300, poll_interval=5.0, sleep=time.sleep):
        self.session = session
        self.base = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.operation_timeout = operation_timeout
        self.poll_interval = poll_interval
        self._sleep = sleep

    @staticmethod
    def name(project, location, repository):
        return f"projects/{project}/locations/{location}/repositories/{repository}"

    def get(self, name):
        return self.session.json("GET", f"{self.base}/v1/{name}", allow=(404,), context=f"repository {name}")

    def create(self, project, location, repository, body):
        parent = f"projects/{project}/locations/{location}"
        response = self.session.request("POST", f"{self.base}/v1/{parent}/repositories", expected=(200,),
                                        allow=(409,), params={"repositoryId": repository}, json=body,
                                        context=f"create repository {repository} in {parent}")
        if response.status_code == 409:  # created meanwhile by someone else: take what is there
            return self.get(self.name(project, location, repository))
        self.wait(response.json())
        return self.get(self.name(project, location, repository))

    def patch(self, name, body, mask):
        return self.session.json("PATCH", f"{self.base}/v1/{name}", params={"updateMask": ",".join(mask)}, json=body,
                                 context=f"update repository {name}")

    def delete(self, name):
        self.wait(self.session.json("DELETE", f"{self.base}/v1/{name}", context=f"delete repository {name}"))

    def wait(self, operation):
        deadline = time.monotonic() + self.operation_timeout
        delay = 0.1  # repositories are usually ready within a second or two: poll early, then back off
        while operation and not operation.get("done"):
            if time.monotonic() > deadline:
                raise GcpError(f"operation {operation.get('name')} did not finish within {self.operation_timeout}s "
                               "— raise operation_timeout or look at it in the Cloud Console")
            self._sleep(delay)
            delay = min(delay * 2, self.poll_interval)
            operation = self.session.json("GET", f"{self.base}/v1/{operation['name']}", context="operation")
        error = (operation or {}).get("error")
        if error:
            raise GcpError(f"operation {operation.get('name')} failed: {error.get('message')} (code {error.get('code')})")
        return operation


def desired_repository(params):
    body = {"format": params["format"]}
    if params.get("description") is not None:
        body["description"] = params["description"]
    if params.get("labels") is not None:
        body["labels"] = {str(k): str(v) for k, v in params["labels"].items()}
    if params.get("immutable_tags") is not None and params["format"] == "DOCKER":
        body["dockerConfig"] = {"immutableTags": bool(params["immutable_tags"])}
    return body


# (field, updateMask path, how to read it from a resource, default when the API omits it)
_MUTABLE = [
    ("description", "description", lambda r: r.get("description"), ""),
    ("labels", "labels", lambda r: r.get("labels"), {}),
    ("dockerConfig", "docker_config.immutable_tags",
     lambda r: (r.get("dockerConfig") or {}).get("immutableTags"), False),
]


def plan_update(desired, actual, name):
    """(patch body, update mask, changes); raises GcpError when the format differs (it cannot change)."""
    if actual.get("format") and actual["format"] != desired["format"]:
        raise GcpError(f"repository {name} has format {actual['format']}, not {desired['format']}; a repository's "
                       "format cannot change — choose another repository name or set format to "
                       f"{actual['format'].lower()}")
    patch, mask, changes = {}, [], []
    for field, path, read, default in _MUTABLE:
        if field not in desired:
            continue
        want = read(desired)
        have = read(actual)
        have = default if have is None else have
        if want != have:
            patch[field] = desired[field]
            mask.append(path)
            changes.append(change(path, have, want))
    return patch, mask, changes


def run_repository(client, params, check_mode):
    project, location, repo = params["project"], params["location"], params["name"]
    name = client.name(project, location, repo)
    actual = client.get(name)
    uri = f"{registry_host(location, params['format'])}/{project}/{repo}"
    result = {"name": name, "registry_uri": uri, "changes": []}
    if params["state"] == "absent":
        if actual is None:
            return {**result, "changed": False, "diff": {"before": {}, "after": {}}}
        size = int(actual.get("sizeBytes") or 0)
        if size and not params["force"]:
            raise GcpError(f"repository {name} holds {size} bytes of images and was kept — deleting it deletes them "
                           "all; set force=true to delete it anyway")
        if not check_mode:
            client.delete(name)
        return {**result, "changed": True, "repository": actual,
                "changes": [change("repository", "present", "absent")],
                "diff": {"before": {"name": name, "sizeBytes": size}, "after": {}}}

    desired = desired_repository(params)
    if actual is None:
        created = {**desired, "name": name} if check_mode else client.create(project, location, repo, desired)
        return {**result, "changed": True, "repository": created,
                "changes": [change("repository", "absent", "present")],
                "diff": {"before": {}, "after": desired}}
    patch, mask, changes = plan_update(desired, actual, name)
    result["registry_uri"] = actual.get("registryUri") or uri
    if not patch:
        return {**result, "changed": False, "repository": actual, "diff": {"before": {}, "after": {}}}
    after = actual if check_mode else client.patch(name, patch, mask)
    return {**result, "changed": True, "repository": after, "changes": changes,
            "diff": diff_of(changes)}
