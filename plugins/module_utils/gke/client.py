# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Container API v1 (GKE) calls and long-running operation polling on a GcpSession."""

from __future__ import annotations

import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.module import run_gcp_module
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    GcpApiError, GcpError, gcp_argument_spec,
)

DEFAULT_ENDPOINT = "https://container.googleapis.com"


def container_endpoint_spec():
    return dict(type="str", default=DEFAULT_ENDPOINT, fallback=(env_fallback, ["GCP_CONTAINER_ENDPOINT"]))


def gke_operation_spec():
    """wait_timeout and poll_interval, as the rapids.triton_fil.gke_operation doc fragment describes them."""
    return dict(wait_timeout=dict(type="int", default=1800), poll_interval=dict(type="float", default=10))


def gke_parent_spec():
    """cluster and location, as the rapids.triton_fil.gke_parent doc fragment describes them."""
    return dict(cluster=dict(type="str", required=True), location=dict(type="str", required=True))


def container_argument_spec(options, waits=True):
    """The argument spec of a Container API module: the Google options (the gcp fragment), the module's own,
    api_endpoint (endpoint.container) and, for a module that waits for operations, the gke_operation options."""
    spec = gcp_argument_spec()
    spec.update(options)
    spec["api_endpoint"] = container_endpoint_spec()
    if waits:
        spec.update(gke_operation_spec())
    return spec


class OperationTimeout(GcpError):
    """The operation is still running server-side when the deadline passed."""


# Resting states (Terraform: containerClusterRestingStates, containerNodePoolRestingStates); any other
# status means an operation is under way and writes would be refused.
CLUSTER_RESTING = ("RUNNING", "ERROR", "DEGRADED")
POOL_RESTING = ("RUNNING", "ERROR", "RUNNING_WITH_ERROR")
ERROR_STATES = ("ERROR", "DEGRADED", "RUNNING_WITH_ERROR")


def is_fingerprint_mismatch(exc):
    return isinstance(exc, GcpApiError) and "fingerprint" in (exc.api_message or "").lower()


def is_busy(exc):
    """400 FAILED_PRECONDITION, GKE's answer while an operation runs on the cluster (not a stale fingerprint)."""
    return (isinstance(exc, GcpApiError) and exc.status == 400
            and exc.reason in ("FAILED_PRECONDITION", "failedPrecondition") and not is_fingerprint_mismatch(exc))


class ContainerClient:
    """projects.locations.clusters / nodePools / operations, with operations waited for."""

    def __init__(self, session, endpoint=DEFAULT_ENDPOINT, *, wait_timeout=1800, poll_interval=10.0,
                 sleep=time.sleep, clock=time.monotonic):
        self.session = session
        self.base = (endpoint or DEFAULT_ENDPOINT).rstrip("/") + "/v1"
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
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
    def call(self, method, path, body, context, *, if_exists=None, if_missing=None):
        """Send a mutating call and wait for its operation.

        A cluster that is busy (an operation of GKE's own after a create, or anyone's) answers 400
        FAILED_PRECONDITION, worded "Cluster is running incompatible operation ..." or "Cluster is
        currently being created, deleted, updated or repaired ...": every such answer except a label
        fingerprint mismatch is retried until the deadline, as Terraform's
        retryWhileIncompatibleOperation does. When an attempt of this call lost its answer (the
        connection dropped and the session sent it again), a 409 means our own create went through:
        ``if_exists()`` then waits on the resource instead; a 404 for a delete (``if_missing()``)
        means it is gone, which is what was asked.
        """
        deadline = self._clock() + self.wait_timeout
        delay = min(1.0, self.poll_interval)
        first_attempt = len(self.session.calls)
        while True:
            try:
                op = self.session.json(method, self._url(path), json=body, context=context)
                break
            except GcpApiError as exc:
                lost = any(call[2] is None for call in self.session.calls[first_attempt:])
                if exc.status == 409 and if_exists is not None and lost:
                    return if_exists()
                if exc.status == 404 and if_missing is not None:
                    return if_missing()
                if not is_busy(exc) or self._clock() + delay > deadline:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, self.poll_interval)
        parts = path.split("/")  # projects/P/locations/L/...
        return self.wait(op, parts[1], parts[3], context)

    def wait(self, op, project, location, context):
        """Poll an operation until DONE; raise naming it and Google's error when it failed.

        GKE reports a failure in ``statusMessage``, often without ``error`` (Terraform's
        ContainerOperationWaiter reads only statusMessage): either one means the operation failed.
        """
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
            delay = min(delay * 2, self.poll_interval)
            op = self.session.json("GET", self._url(path), context=f"{context}: operation {name}")
        message = (op.get("error") or {}).get("message") or op.get("statusMessage")
        if op.get("error") or op.get("statusMessage"):
            raise GcpError(f"{context}: operation {name} ({op.get('operationType')}) failed: {message or op['error']}")
        return op

    def wait_at_rest(self, kind, getter, context):
        """Poll getter() until the resource is in a resting state (Terraform's
        containerClusterAwaitRestingState / containerNodePoolAwaitRestingState); None when it is gone."""
        resting = CLUSTER_RESTING if kind == "cluster" else POOL_RESTING
        deadline = self._clock() + self.wait_timeout
        delay = 0.25
        while True:
            resource = getter()
            if resource is None or resource.get("status") in resting:
                return resource
            if self._clock() > deadline:
                raise OperationTimeout(f"{context} is still {resource.get('status')} after {self.wait_timeout}s "
                                       "(an operation runs on it); raise wait_timeout or re-run when it has finished")
            self._sleep(delay)
            delay = min(delay * 2, self.poll_interval)

    def cluster_at_rest(self, project, location, name):
        return self.wait_at_rest("cluster", lambda: self.get_cluster(project, location, name),
                                 f"cluster {name!r} in {project}/{location}")

    def pool_at_rest(self, project, location, cluster, name):
        return self.wait_at_rest("node pool", lambda: self.get_node_pool(project, location, cluster, name),
                                 f"node pool {name!r} of cluster {cluster!r} in {project}/{location}")

    def create_cluster(self, project, location, cluster):
        name = cluster["name"]
        return self.call("POST", f"projects/{project}/locations/{location}/clusters", {"cluster": cluster},
                         f"create cluster {name!r} in {project}/{location}",
                         if_exists=lambda: self.cluster_at_rest(project, location, name))

    def delete_cluster(self, project, location, name):
        return self.call("DELETE", self.cluster_path(project, location, name), None,
                         f"delete cluster {name!r} in {project}/{location}", if_missing=lambda: None)

    def update_cluster(self, project, location, name, update):
        field = next(k for k in update if k != "desiredNodePoolId")
        return self.call("PUT", self.cluster_path(project, location, name), {"update": update},
                         f"update {field} of cluster {name!r} in {project}/{location}")

    def set_resource_labels(self, project, location, name, labels, fingerprint):
        return self.call("POST", f"{self.cluster_path(project, location, name)}:setResourceLabels",
                         {"resourceLabels": labels, "labelFingerprint": fingerprint},
                         f"set labels of cluster {name!r} in {project}/{location}")

    def set_labels(self, project, location, name, labels, attempts=5):
        """setResourceLabels with the fingerprint read just before.

        A fingerprint mismatch means the labels changed since: somebody else's write, or our own
        call whose answer was lost and that went through. Read again: done when the labels are the
        wanted ones already, else try again with the new fingerprint.
        """
        for attempt in range(attempts):
            cluster = self.get_cluster(project, location, name)
            if cluster is None:
                raise GcpError(f"cluster {name!r} in {project}/{location} disappeared while its labels were set")
            if attempt and (cluster.get("resourceLabels") or {}) == labels:
                return None
            try:
                return self.set_resource_labels(project, location, name, labels, cluster.get("labelFingerprint", ""))
            except GcpApiError as exc:
                if not is_fingerprint_mismatch(exc) or attempt == attempts - 1:
                    raise
        return None  # pragma: no cover

    def create_node_pool(self, project, location, cluster, pool):
        name = pool["name"]
        return self.call("POST", f"{self.cluster_path(project, location, cluster)}/nodePools", {"nodePool": pool},
                         f"create node pool {name!r} in cluster {cluster!r} ({project}/{location})",
                         if_exists=lambda: self.pool_at_rest(project, location, cluster, name))

    def delete_node_pool(self, project, location, cluster, name):
        return self.call("DELETE", f"{self.cluster_path(project, location, cluster)}/nodePools/{name}", None,
                         f"delete node pool {name!r} of cluster {cluster!r} ({project}/{location})",
                         if_missing=lambda: None)

    def node_pool_call(self, project, location, cluster, name, verb, suffix, body, what):
        path = f"{self.cluster_path(project, location, cluster)}/nodePools/{name}{suffix}"
        return self.call(verb, path, body, f"{what} of node pool {name!r} in cluster {cluster!r} ({project}/{location})")


def _container_client(session, params):
    poll = params.get("poll_interval")
    poll = 10.0 if poll is None else poll
    if poll <= 0:
        raise GcpError(f"poll_interval must be a positive number of seconds, got {poll}")
    return ContainerClient(session, params["api_endpoint"], wait_timeout=params.get("wait_timeout") or 1800,
                           poll_interval=poll)


def run_container_module(module, runner):
    """The body of every GKE module: run_gcp_module with a Container API client."""
    run_gcp_module(module, _container_client, runner)
