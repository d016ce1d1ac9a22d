# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Container API v1 (GKE) calls and long-running operation polling on a GcpSession."""

from __future__ import annotations

import time

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    HAS_GOOGLE_AUTH, GOOGLE_AUTH_IMPORT_ERROR, GcpApiError, GcpError, GcpSession,
)

DEFAULT_ENDPOINT = "https://container.googleapis.com"


def container_endpoint_spec():
    return dict(type="str", default=DEFAULT_ENDPOINT, fallback=(env_fallback, ["GCP_CONTAINER_ENDPOINT"]))


def gke_operation_spec():
    """wait_timeout and poll_interval, as the rapids.triton_fil.gke_operation doc fragment describes them."""
    return dict(wait_timeout=dict(type="int", default=1800), poll_interval=dict(type="float", default=10))


class OperationTimeout(GcpError):
    """The operation is still running server-side when the deadline passed."""


class ContainerClient:
    """projects.locations.clusters / nodePools / operations, with operations waited for."""

    def __init__(self, session, endpoint=DEFAULT_ENDPOINT, *, wait_timeout=1800, poll_max=10.0,
                 sleep=time.sleep, clock=time.monotonic):
        self.session = session
        self.base = (endpoint or DEFAULT_ENDPOINT).rstrip("/") + "/v1"
        self.wait_timeout = wait_timeout
        self.poll_max = poll_max
        self._sleep = sleep
        self._clock = clock
        self.operations = []  # names of the operations this run started

    @staticmethod
    def cluster_path(project, location, name):
        return f"projects/{project}/locations/{location}/clusters/{name}"

    def _url(self, path):
        return f"{self.base}/{path}"

    # --- reads -------------------------------------------------------------------------------
    def get(self, path, context):
        return self.session.json("GET", self._url(path), context=context, allow=(404,))

    def get_cluster(self, project, location, name):
        return self.get(self.cluster_path(project, location, name), f"cluster {name!r} in {project}/{location}")

    def get_node_pool(self, project, location, cluster, name):
        return self.get(f"{self.cluster_path(project, location, cluster)}/nodePools/{name}",
                        f"node pool {name!r} of cluster {cluster!r} in {project}/{location}")

    # --- writes ------------------------------------------------------------------------------
    def call(self, method, path, body, context):
        """Send a mutating call and wait for its operation.

        GKE refuses a second operation on a cluster while one runs (400 FAILED_PRECONDITION
        "incompatible operation"): such calls are retried until the deadline.
        """
        deadline = self._clock() + self.wait_timeout
        delay = 2.0
        while True:
            try:
                op = self.session.json(method, self._url(path), json=body, context=context)
                break
            except GcpApiError as exc:
                busy = exc.status == 400 and exc.reason == "FAILED_PRECONDITION" and "operation" in exc.api_message
                if not busy or self._clock() + delay > deadline:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 30.0)
        parts = path.split("/")  # projects/P/locations/L/...
        return self.wait(op, parts[1], parts[3], context)

    def wait(self, op, project, location, context):
        """Poll an operation until DONE; raise naming it and Google's error when it failed."""
        name = op["name"]
        self.operations.append(name)
        path = f"projects/{project}/locations/{location}/operations/{name}"
        deadline = self._clock() + self.wait_timeout
        delay = 0.25
        while op.get("status") != "DONE":
            if self._clock() > deadline:
                raise OperationTimeout(
                    f"{context}: operation {name} ({op.get('operationType')}) is still {op.get('status')} after "
                    f"{self.wait_timeout}s; it goes on server-side — raise wait_timeout or re-run to converge")
            self._sleep(delay)
            delay = min(delay * 2, self.poll_max)
            op = self.session.json("GET", self._url(path), context=f"{context}: operation {name}")
        error = op.get("error") or {}
        if error:
            raise GcpError(f"{context}: operation {name} ({op.get('operationType')}) failed: "
                           f"{error.get('message') or op.get('statusMessage')}")
        return op

    def create_cluster(self, project, location, cluster):
        return self.call("POST", f"projects/{project}/locations/{location}/clusters", {"cluster": cluster},
                         f"create cluster {cluster['name']!r} in {project}/{location}")

    def delete_cluster(self, project, location, name):
        return self.call("DELETE", self.cluster_path(project, location, name), None,
                         f"delete cluster {name!r} in {project}/{location}")

    def update_cluster(self, project, location, name, update):
        field = next(iter(update))
        return self.call("PUT", self.cluster_path(project, location, name), {"update": update},
                         f"update {field} of cluster {name!r} in {project}/{location}")

    def set_resource_labels(self, project, location, name, labels, fingerprint):
        return self.call("POST", f"{self.cluster_path(project, location, name)}:setResourceLabels",
                         {"resourceLabels": labels, "labelFingerprint": fingerprint},
                         f"set labels of cluster {name!r} in {project}/{location}")

    def create_node_pool(self, project, location, cluster, pool):
        return self.call("POST", f"{self.cluster_path(project, location, cluster)}/nodePools", {"nodePool": pool},
                         f"create node pool {pool['name']!r} in cluster {cluster!r} ({project}/{location})")

    def delete_node_pool(self, project, location, cluster, name):
        return self.call("DELETE", f"{self.cluster_path(project, location, cluster)}/nodePools/{name}", None,
                         f"delete node pool {name!r} of cluster {cluster!r} ({project}/{location})")

    def node_pool_call(self, project, location, cluster, name, verb, suffix, body, what):
        path = f"{self.cluster_path(project, location, cluster)}/nodePools/{name}{suffix}"
        return self.call(verb, path, body, f"{what} of node pool {name!r} in cluster {cluster!r} ({project}/{location})")


def run_container_module(module, runner):
    """The body of every GKE module: session, client, runner(client, params, check_mode), exit or fail."""
    name = module._name.rsplit(".", 1)[-1]  # pylint: disable=protected-access
    if not HAS_GOOGLE_AUTH:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=str(GOOGLE_AUTH_IMPORT_ERROR))
    client = None
    try:
        poll = module.params.get("poll_interval")
        poll = 10.0 if poll is None else poll
        if poll <= 0:
            raise GcpError(f"poll_interval must be a positive number of seconds, got {poll}")
        client = ContainerClient(GcpSession(module.params), module.params["api_endpoint"],
                                 wait_timeout=module.params.get("wait_timeout") or 1800, poll_max=poll)
        result = runner(client, module.params, module.check_mode)
    except GcpError as exc:
        module.fail_json(msg=f"{name}: {exc}", operations=client.operations if client else [])
    module.exit_json(**result)
