"""A GKE control-plane simulator: the Container API v1 methods the collection uses, in memory.

It answers the way GKE does, not the way a client expects: each modelled behaviour is listed, with
its source, in local_stack/simulators/README.md. In short:

- every request body is validated against Google's container v1 discovery document (unknown field
  or wrong type -> 400 INVALID_ARGUMENT);
- responses are built the way GKE builds them: server defaults filled in, names normalised (short
  network names, upper-case image types, OAuth scope aliases expanded), and printed as proto3 JSON
  (zero, false and empty values dropped, int64 as strings) - ``Discovery.render``;
- long-running operations move PENDING -> RUNNING -> DONE over ``op_seconds``; a failed operation
  carries only ``statusMessage`` (``error`` too with ``op_error``'s ``with_error=True``);
- a new cluster is RECONCILING for a while after its create operation (GKE runs operations of its
  own), and writes to a busy cluster answer 400 FAILED_PRECONDITION with GKE's real messages;
- errors are Google-shaped JSON including the legacy ``errors[].reason`` (``failedPrecondition``).

Faults tests can inject:

    sim.inject("status", 503, count=2, match="setAutoscaling")     # transient bursts (429/503)
    sim.inject("drop", count=1, match="POST")                       # connection closed, nothing done
    sim.inject("lose_response", match="clusters.create")            # done, but the answer is lost
    sim.inject("op_error", message="...", match="CREATE_NODE_POOL") # the next such operation fails
    sim.inject("status", 403, reason="QUOTA_EXCEEDED", message="Insufficient regional quota ...")

``control_plane`` (optional) is a real local Kubernetes control plane the clusters point at: its
``endpoint`` (host:port) and ``ca_certificate`` (base64 PEM) are the cluster's, and it is told about
node pools as they change (``sync_node_pool``, ``delete_node_pool``, ``delete_cluster``), outside
the simulator's lock.

Run standalone (prints its URL): python local_stack/simulators/gke.py --op-seconds 1
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import itertools
import json
import re
import threading
import time
from pathlib import Path

try:
    from .discovery import Discovery
    from .google_http import ApiError, FaultQueue, JsonHandler, serve_http, stop_http
except ImportError:  # run as a script
    from discovery import Discovery  # type: ignore[no-redef]
    from google_http import ApiError, FaultQueue, JsonHandler, serve_http, stop_http  # type: ignore[no-redef]

MASTER_VERSION = "1.33.5-gke.1201000"
ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nRkFLRS1HS0UtQ0E=\n-----END CERTIFICATE-----\n").decode()
DEFAULT_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only",
                  "https://www.googleapis.com/auth/logging.write",
                  "https://www.googleapis.com/auth/monitoring"]
# gcloud's scope aliases, read from a data file that names its source (Terraform's
# CanonicalizeServiceScope): node pools report the URLs.
_SCOPES = json.loads((Path(__file__).parent / "data" / "scope_aliases.json").read_text())
# G2 machine types carry a fixed number of L4 GPUs (https://cloud.google.com/compute/docs/gpus, NVIDIA L4).
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-24": 2,
           "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8}
BUSY_CREATING = "Cluster is currently being created, deleted, updated or repaired and cannot be updated."
POOL_FIELDS = ("desiredNodePoolAutoscaling", "desiredImageType", "desiredNodeVersion")  # go with desiredNodePoolId


def fingerprint(labels):
    """8 hex digits, like GKE's labelFingerprint ("a9dc16a7")."""
    return hashlib.sha256(json.dumps(labels or {}, sort_keys=True).encode()).hexdigest()[:8]


def canonical_scope(scope):
    alias = _SCOPES["aliases"].get(scope)
    return _SCOPES["prefix"] + alias if alias else scope


def short_name(link):
    """The last path segment: GKE reports cluster.network/subnetwork by name."""
    return link.rstrip("/").rsplit("/", 1)[-1] if link else link


def deep_merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GkeSimulator(FaultQueue):
    """State, operations and faults; ``serve()`` exposes them over HTTP on 127.0.0.1."""

    def __init__(self, op_seconds=0.3, control_plane=None):
        """op_seconds: how long operations take, one number or {operationType: seconds, "default": s}.

        A CREATE_CLUSTER that brings up node pools besides the first takes
        op_seconds["CREATE_CLUSTER_EXTRA_POOL"] longer per extra pool (0 unless given): GKE creates a
        cluster's initial pools inside the cluster operation, in parallel, not one operation each.
        op_seconds["GKE_RECONCILE"] is how long a new cluster stays RECONCILING after its create
        operation (GKE's own operations; the default duration unless given, 0 turns it off).
        """
        self.discovery = Discovery("container.v1")
        self.op_seconds = op_seconds
        self.control_plane = control_plane
        self.lock = threading.RLock()
        self.clusters = {}        # (project, location, name) -> cluster, in API field names
        self.operations = {}      # (project, location, op name) -> entry dict
        self.busy = {}            # (project, location, cluster) -> (op name, started by GKE itself)
        self.requests = []        # (method, path, method id or None, status)
        self.faults = []
        self.schema_rejections = []  # (method id, problems) of bodies the discovery document rejected
        self.unmodelled = {}      # (project, location, cluster) -> {desired field: value} of updates not modelled
        self._ids = itertools.count(1)
        self._control_plane_calls = []  # queued under the lock, made outside it
        self._control_plane_lock = threading.Lock()
        self.server = None
        self.url = None

    def duration(self, op_type):
        """Seconds an operation of this type takes: op_seconds, or op_seconds[op_type] / ["default"]."""
        if isinstance(self.op_seconds, dict):
            return float(self.op_seconds.get(op_type, self.op_seconds.get("default", 0.3)))
        return float(self.op_seconds)

    # ----------------------------------------------------------------- test API
    def inject(self, kind, status=None, *, count=1, match="", reason=None, message=None, with_error=False):
        with self.lock:
            self.faults.append({"kind": kind, "status": status, "count": count, "match": match,
                                "reason": reason, "message": message, "with_error": with_error})

    def calls(self, method_suffix=None, writes_only=False):
        with self.lock:
            found = [r for r in self.requests if r[2] and (method_suffix is None or r[2].endswith(method_suffix))]
        if writes_only:
            found = [r for r in found if r[0] not in ("GET", "HEAD")]
        return found

    def write_calls(self):
        return [r for r in self.calls(writes_only=True) if not r[2].endswith("operations.get")]

    def reset_log(self):
        with self.lock:
            self.requests.clear()

    def settle(self, timeout=10.0):
        """Wait until no operation runs (GKE's own included); for tests that inspect state directly."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                self._settle()
                if not self.busy:
                    break
            time.sleep(0.02)
        self._flush_control_plane()

    def serve(self):
        self.server, self.url = serve_http(type("Handler", (_Handler,), {"sim": self}))
        return self

    def close(self):
        stop_http(self.server)

    # ----------------------------------------------------------------- control plane
    def _tell_control_plane(self, method, *args):
        if self.control_plane is not None:
            self._control_plane_calls.append((method, args))

    def _flush_control_plane(self):
        """Make the queued control-plane calls, in order, without holding the simulator's lock."""
        with self._control_plane_lock:
            while True:
                with self.lock:
                    if not self._control_plane_calls:
                        return
                    method, args = self._control_plane_calls.pop(0)
                getattr(self.control_plane, method)(*args)

    def _sync_pool(self, cluster, pool):
        self._tell_control_plane("sync_node_pool", cluster["name"], self.discovery.render("NodePool", pool))

    # ----------------------------------------------------------------- operations
    def start_operation(self, project, location, op_type, target, cluster_key, on_done, extra_seconds=0.0,
                        by_gke=False):
        name = f"operation-{int(time.time() * 1000)}-{next(self._ids):04d}"
        op = {"name": name, "operationType": op_type, "status": "PENDING", "location": location,
              "zone": location, "selfLink": f"{self.url}/v1/projects/{project}/locations/{location}/operations/{name}",
              "targetLink": target, "startTime": now()}
        fault = None if by_gke else self.take_fault(("op_error",), op_type)
        seconds = (self.duration("GKE_RECONCILE") if by_gke else self.duration(op_type)) + extra_seconds
        self.operations[(project, location, name)] = {"op": op, "started": time.monotonic(), "on_done": on_done,
                                                      "fault": fault, "seconds": seconds}
        if cluster_key:
            self.busy[cluster_key] = (name, by_gke)
        return self.discovery.render("Operation", op)

    def poll_operation(self, project, location, name):
        entry = self.operations.get((project, location, name))
        if entry is None:
            raise ApiError(404, f"Operation \"projects/{project}/locations/{location}/operations/{name}\" not found.")
        op = entry["op"]
        elapsed = time.monotonic() - entry["started"]
        if op["status"] != "DONE":
            if elapsed >= entry["seconds"]:
                op["status"] = "DONE"
                op["endTime"] = now()
                for key, (busy, _by_gke) in list(self.busy.items()):
                    if busy == name:
                        del self.busy[key]
                fault = entry["fault"]
                if fault:
                    # GKE reports a failed operation in statusMessage; Terraform's ContainerOperationWaiter
                    # reads nothing else ("container's operation doesn't have an error field").
                    op["statusMessage"] = fault["message"] or "Internal error."
                    if fault["with_error"]:
                        op["error"] = {"code": 13, "message": op["statusMessage"]}
                    entry["on_done"](False)
                else:
                    entry["on_done"](True)
            elif elapsed >= entry["seconds"] / 3:
                op["status"] = "RUNNING"
        return self.discovery.render("Operation", op)

    def _settle(self):
        """Complete operations whose time has come even if nobody polls them."""
        for (project, location, name) in list(self.operations):
            self.poll_operation(project, location, name)

    # ----------------------------------------------------------------- resources
    def _cluster(self, project, location, name):
        cluster = self.clusters.get((project, location, name))
        if cluster is None:
            raise ApiError(404, f"Not found: projects/{project}/locations/{location}/clusters/{name}.")
        return cluster

    def _pool(self, cluster, name):
        for pool in cluster["nodePools"]:
            if pool["name"] == name:
                return pool
        raise ApiError(404, f"Not found: projects/.../clusters/{cluster['name']}/nodePools/{name}.")

    def _not_busy(self, key):
        if key in self.busy:
            name, by_gke = self.busy[key]
            # Both are GKE's words: the first while GKE works on the cluster itself (after a create,
            # a repair), the second while an operation somebody started runs.
            raise ApiError(400, BUSY_CREATING if by_gke else f"Cluster is running incompatible operation {name}.",
                           "FAILED_PRECONDITION")

    def _zones(self, location, node_locations):
        if node_locations:
            return list(node_locations)
        return [location] if ZONE.match(location) else [f"{location}-a", f"{location}-b", f"{location}-c"]

    @staticmethod
    def _check_primary_zone(location, zones, field):
        if ZONE.match(location) and location not in zones:
            raise ApiError(400, f"{field} must contain the cluster's zone {location} (a zonal cluster's control "
                                "plane zone always runs nodes).")

    @staticmethod
    def _check_workload_metadata(cluster, config):
        mode = (config.get("workloadMetadataConfig") or {}).get("mode")
        if mode == "GKE_METADATA" and not (cluster.get("workloadIdentityConfig") or {}).get("workloadPool"):
            raise ApiError(400, "Workload metadata mode GKE_METADATA requires Workload Identity to be enabled on the "
                                "cluster (workloadIdentityConfig.workloadPool).")

    @staticmethod
    def _check_gcfs(config, image_type=None):
        image = (image_type or config.get("imageType") or "COS_CONTAINERD").upper()
        if (config.get("gcfsConfig") or {}).get("enabled") and image != "COS_CONTAINERD":
            raise ApiError(400, f"Image streaming (gcfsConfig) requires the COS_CONTAINERD image type, not {image}.")

    @staticmethod
    def _check_accelerators(config):
        machine = config.get("machineType", "e2-medium")
        for accel in config.get("accelerators") or []:
            kind = accel.get("acceleratorType", "")
            count = int(accel.get("acceleratorCount") or 0)
            if kind == "nvidia-l4" and machine not in G2_GPUS:
                raise ApiError(400, f"Accelerator type nvidia-l4 is only available on G2 machine types, not {machine}.")
            if machine in G2_GPUS and (kind != "nvidia-l4" or count != G2_GPUS[machine]):
                raise ApiError(400, f"Machine type {machine} comes with {G2_GPUS[machine]} nvidia-l4; got {count} "
                                    f"{kind}.")
            if kind.startswith("nvidia-tesla-") and not machine.startswith("n1-"):
                raise ApiError(400, f"Accelerator type {kind} can only be attached to N1 machine types, not {machine}.")
            sharing = accel.get("gpuSharingConfig") or {}
            if sharing and int(sharing.get("maxSharedClientsPerGpu") or 0) < 1:
                raise ApiError(400, "gpuSharingConfig.maxSharedClientsPerGpu must be at least 1.")

    def _new_pool(self, pool, cluster):
        """A NodePool with GKE's defaults filled in and names normalised."""
        pool = copy.deepcopy(pool)
        config = pool.setdefault("config", {})
        config.setdefault("machineType", "e2-medium")
        config.setdefault("diskSizeGb", 100)
        config.setdefault("diskType", "pd-balanced")
        config["imageType"] = config.get("imageType", "COS_CONTAINERD").upper()
        config["oauthScopes"] = [canonical_scope(s) for s in config.get("oauthScopes") or DEFAULT_SCOPES]
        config.setdefault("serviceAccount", "default")
        config.setdefault("metadata", {"disable-legacy-endpoints": "true"})
        config.setdefault("shieldedInstanceConfig", {"enableIntegrityMonitoring": True})
        if config["machineType"] in G2_GPUS and not config.get("accelerators"):
            # G2 machine types come with their L4 GPUs attached.
            config["accelerators"] = [{"acceleratorType": "nvidia-l4",
                                       "acceleratorCount": str(G2_GPUS[config["machineType"]])}]
        for accel in config.get("accelerators", []):
            accel["acceleratorCount"] = str(accel.get("acceleratorCount", "1"))
        if (cluster.get("workloadIdentityConfig") or {}).get("workloadPool"):
            # New pools of a Workload Identity cluster default to the GKE metadata server.
            config.setdefault("workloadMetadataConfig", {"mode": "GKE_METADATA"})
        self._check_workload_metadata(cluster, config)
        self._check_gcfs(config)
        self._check_accelerators(config)
        auto = pool.get("autoscaling") or {}
        if auto.get("enabled") and int(auto.get("minNodeCount", 0)) > int(auto.get("maxNodeCount", 0)):
            raise ApiError(400, "Node pool autoscaling: min_node_count must be <= max_node_count.")
        pool.setdefault("initialNodeCount", 1)
        pool.setdefault("locations", list(cluster["locations"]))
        pool.setdefault("management", {"autoUpgrade": True, "autoRepair": True})
        pool["version"] = MASTER_VERSION
        pool["status"] = "PROVISIONING"
        pool["podIpv4CidrSize"] = 24
        pool["selfLink"] = f"{cluster['selfLink']}/nodePools/{pool['name']}"
        return pool

    def handle(self, verb, path, body):
        """Dispatch one validated request; returns (method id, (status, json))."""
        try:
            with self.lock:
                self._settle()
                found = self.discovery.match(verb, path)
                if found is None:
                    raise ApiError(404, f"Method not found: {verb} {path}")
                method_id, params, schema = found
                if schema:
                    problems = self.discovery.validate(schema, body if body is not None else {})
                    if problems:
                        self.schema_rejections.append((method_id, problems))
                        raise ApiError(400, " ".join(problems))
                name = method_id.replace("container.projects.locations.", "").replace(".", "_")
                handler = getattr(self, "m_" + name, None)
                if handler is None:
                    raise ApiError(501, f"{method_id} is not simulated", "UNIMPLEMENTED")
                return method_id, handler(*params, body=body or {})
        finally:
            self._flush_control_plane()

    # clusters ----------------------------------------------------------------------------------
    def _render_cluster(self, cluster):
        return self.discovery.render("Cluster", cluster)

    def m_clusters_get(self, project, location, name, body):
        return 200, self._render_cluster(self._cluster(project, location, name))

    def m_clusters_list(self, project, location, body):
        return 200, {"clusters": [self._render_cluster(c) for (p, l, _name), c in self.clusters.items()
                                  if p == project and (location == "-" or l == location)]}

    def m_clusters_create(self, project, location, body):
        spec = body["cluster"]
        name = spec.get("name")
        if not name:
            raise ApiError(400, "Cluster.name must be set.")
        if not (ZONE.match(location) or REGION.match(location)):
            raise ApiError(400, f"Location \"{location}\" is not a valid zone or region.")
        key = (project, location, name)
        if key in self.clusters:
            raise ApiError(409, f"Already exists: projects/{project}/locations/{location}/clusters/{name}.")
        if spec.get("nodePools") and (spec.get("nodeConfig") or spec.get("initialNodeCount")):
            raise ApiError(400, "Cluster.node_config and Cluster.initial_node_count may not be set with Cluster.node_pools.")
        zones = self._zones(location, spec.get("locations"))
        self._check_primary_zone(location, zones, "Cluster.locations")
        cluster = copy.deepcopy(spec)
        cluster["locations"] = zones
        network, subnetwork = spec.get("network") or "default", spec.get("subnetwork") or "default"
        region = location if REGION.match(location) else location.rsplit("-", 1)[0]
        endpoint, ca = f"34.{len(self.clusters) + 10}.0.1", FAKE_CA
        if self.control_plane is not None:
            endpoint, ca = self.control_plane.endpoint, self.control_plane.ca_certificate
        cluster.update({
            "status": "PROVISIONING", "location": location, "zone": location,
            "selfLink": f"{self.url}/v1/projects/{project}/locations/{location}/clusters/{name}",
            "endpoint": endpoint, "currentMasterVersion": MASTER_VERSION,
            "currentNodeVersion": MASTER_VERSION, "initialClusterVersion": MASTER_VERSION,
            "masterAuth": {"clusterCaCertificate": ca},
            "network": short_name(network), "subnetwork": short_name(subnetwork),
            "networkConfig": {"network": f"projects/{project}/global/networks/{short_name(network)}",
                              "subnetwork": f"projects/{project}/regions/{region}/subnetworks/{short_name(subnetwork)}"},
            "labelFingerprint": fingerprint(spec.get("resourceLabels")),
            "createTime": now(),
        })
        pools = spec.get("nodePools") or [{"name": "default-pool", "config": spec.get("nodeConfig", {}),
                                           "initialNodeCount": spec.get("initialNodeCount", 3)}]
        cluster["nodePools"] = [self._new_pool(p, cluster) for p in pools]
        cluster.pop("nodeConfig", None)
        cluster.pop("initialNodeCount", None)
        cluster.setdefault("addonsConfig", {})
        cluster["addonsConfig"].setdefault("horizontalPodAutoscaling", {})
        cluster["addonsConfig"].setdefault("httpLoadBalancing", {})
        cluster.setdefault("releaseChannel", {"channel": "REGULAR"})
        cluster.setdefault("ipAllocationPolicy", {"useIpAliases": True})
        self.clusters[key] = cluster

        def done(ok):
            if ok and ((cluster.get("monitoringConfig") or {}).get("managedPrometheusConfig") or {}).get("enabled", True):
                # Managed collection (GMP) is on by default for new Standard clusters since GKE 1.27 (GKE docs,
                # "Managed collection"): its CRDs exist before any workload.
                self._tell_control_plane("enable_managed_prometheus")
            for pool in cluster["nodePools"]:
                pool["status"] = "RUNNING" if ok else "ERROR"
                if ok:
                    self._sync_pool(cluster, pool)
            if not ok:
                cluster["status"] = "ERROR"
                cluster["statusMessage"] = "Cluster creation failed."
            elif self.duration("GKE_RECONCILE") > 0:
                # GKE starts operations of its own on a new cluster; until they end it is RECONCILING
                # and refuses writes (Terraform waits for a resting state after every create).
                cluster["status"] = "RECONCILING"
                self.start_operation(project, location, "UPDATE_CLUSTER", cluster["selfLink"], key,
                                     lambda _ok: cluster.__setitem__("status", "RUNNING"), by_gke=True)
            else:
                cluster["status"] = "RUNNING"
        extra = 0.0
        if isinstance(self.op_seconds, dict):
            extra = (len(pools) - 1) * float(self.op_seconds.get("CREATE_CLUSTER_EXTRA_POOL", 0.0))
        return 200, self.start_operation(project, location, "CREATE_CLUSTER", cluster["selfLink"], key, done, extra)

    def m_clusters_delete(self, project, location, name, body):
        def done(_cluster, ok):
            if ok:
                self.clusters.pop((project, location, name), None)
                self._tell_control_plane("delete_cluster", name)
        return self._cluster_operation(project, location, name, "DELETE_CLUSTER", "STOPPING", done)

    def _cluster_op(self, project, location, name, op_type, mutate):
        def done(cluster, ok):
            if ok:
                mutate(cluster)
            cluster["status"] = "RUNNING"
        return self._cluster_operation(project, location, name, op_type, "RECONCILING", done)

    def _cluster_operation(self, project, location, name, op_type, status, done):
        """Start op_type on an idle cluster, which shows status meanwhile; done(cluster, ok) runs at its end."""
        key = (project, location, name)
        cluster = self._cluster(project, location, name)
        self._not_busy(key)
        cluster["status"] = status
        return 200, self.start_operation(project, location, op_type, cluster["selfLink"], key,
                                         lambda ok: done(cluster, ok))

    def m_clusters_update(self, project, location, name, body):
        update = body.get("update") or {}
        desired = [k for k in update if k.startswith("desired") and k != "desiredNodePoolId"]
        if len(desired) != 1:
            raise ApiError(400, "Exactly one update can be applied to a cluster with each request; "
                                f"got {len(desired)} ({', '.join(desired) or 'none'}).")
        field = desired[0]
        value = update[field]
        cluster = self._cluster(project, location, name)
        pool = None
        if field in POOL_FIELDS:
            # desiredNodePoolId names the pool these apply to; it is not an update of its own.
            if not update.get("desiredNodePoolId"):
                raise ApiError(400, f"{field} requires desiredNodePoolId.")
            pool = self._pool(cluster, update["desiredNodePoolId"])
            if field == "desiredImageType":
                self._check_gcfs(pool["config"], value)
        elif "desiredNodePoolId" in update:
            raise ApiError(400, f"desiredNodePoolId cannot be combined with {field}.")
        if field == "desiredLocations":
            self._check_primary_zone(location, value, "desiredLocations")
            before = set(cluster["locations"])
            if set(value) - before and before - set(value):
                raise ApiError(400, "Node locations cannot be added and removed in the same request: add the new "
                                    "zones first, then remove the old ones.")

        def mutate(c):
            if field == "desiredLocations":
                c["locations"] = list(value)
            elif field == "desiredReleaseChannel":
                c["releaseChannel"] = value
            elif field == "desiredWorkloadIdentityConfig":
                c["workloadIdentityConfig"] = value  # existing pools keep their metadata mode
            elif field == "desiredMasterAuthorizedNetworksConfig":
                c["masterAuthorizedNetworksConfig"] = value
            elif field == "desiredAddonsConfig":
                deep_merge(c.setdefault("addonsConfig", {}), value)
            elif field == "desiredNodePoolAutoscaling":
                pool["autoscaling"] = value
                self._sync_pool(c, pool)
            elif field == "desiredImageType":
                pool["config"]["imageType"] = value.upper()
                self._sync_pool(c, pool)
            else:
                self.unmodelled.setdefault((project, location, name), {})[field] = value
        return self._cluster_op(project, location, name, "UPDATE_CLUSTER", mutate)

    def m_clusters_setAddons(self, project, location, name, body):
        return self._cluster_op(project, location, name, "SET_ADDONS",
                                lambda c: c.__setitem__("addonsConfig", deep_merge(c.get("addonsConfig", {}), body["addonsConfig"])))

    def m_clusters_setResourceLabels(self, project, location, name, body):
        cluster = self._cluster(project, location, name)
        self._not_busy((project, location, name))
        supplied, expected = body.get("labelFingerprint", ""), cluster["labelFingerprint"]
        if supplied != expected:
            # GKE's words (crossplane-contrib/provider-gcp#477, terraform-provider-google#5608).
            raise ApiError(400, "Labels could not be set due to fingerprint mismatch; try again with the proper "
                                f"fingerprint: incorrect fingerprint supplied was \"{supplied}\", the expected one is "
                                f"\"{expected}\".", "FAILED_PRECONDITION")

        def mutate(c):
            c["resourceLabels"] = body.get("resourceLabels", {})
            c["labelFingerprint"] = fingerprint(c["resourceLabels"])
        return self._cluster_op(project, location, name, "SET_LABELS", mutate)

    # node pools --------------------------------------------------------------------------------
    def m_clusters_nodePools_get(self, project, location, cluster, name, body):
        return 200, self.discovery.render("NodePool", self._pool(self._cluster(project, location, cluster), name))

    def m_clusters_nodePools_list(self, project, location, cluster, body):
        pools = self._cluster(project, location, cluster)["nodePools"]
        return 200, {"nodePools": [self.discovery.render("NodePool", p) for p in pools]}

    def m_clusters_nodePools_create(self, project, location, cluster_name, body):
        key = (project, location, cluster_name)
        cluster = self._cluster(project, location, cluster_name)
        spec = body["nodePool"]
        if any(p["name"] == spec.get("name") for p in cluster["nodePools"]):
            raise ApiError(409, f"Already exists: projects/{project}/locations/{location}/clusters/"
                                f"{cluster_name}/nodePools/{spec.get('name')}.")
        self._not_busy(key)
        pool = self._new_pool(spec, cluster)
        cluster["nodePools"].append(pool)

        def done(ok):
            pool["status"] = "RUNNING" if ok else "ERROR"
            if ok:
                self._sync_pool(cluster, pool)
            else:
                pool["statusMessage"] = "Node pool creation failed."
        return 200, self.start_operation(project, location, "CREATE_NODE_POOL", pool["selfLink"], key, done)

    def _claim_pool(self, project, location, cluster_name, name, status):
        """(key, cluster, pool) of a pool an operation starts on: 400 while its cluster is busy, else status set."""
        key = (project, location, cluster_name)
        cluster = self._cluster(project, location, cluster_name)
        pool = self._pool(cluster, name)
        self._not_busy(key)
        pool["status"] = status
        return key, cluster, pool

    def m_clusters_nodePools_delete(self, project, location, cluster_name, name, body):
        key, cluster, pool = self._claim_pool(project, location, cluster_name, name, "STOPPING")

        def done(ok):
            if ok:
                cluster["nodePools"] = [p for p in cluster["nodePools"] if p["name"] != name]
                self._tell_control_plane("delete_node_pool", cluster_name, name)
        return 200, self.start_operation(project, location, "DELETE_NODE_POOL", pool["selfLink"], key, done)

    def _pool_op(self, project, location, cluster_name, name, op_type, mutate, sync=True):
        key, cluster, pool = self._claim_pool(project, location, cluster_name, name, "RECONCILING")

        def done(ok):
            if ok:
                mutate(pool)
            pool["status"] = "RUNNING"
            if ok and sync:
                self._sync_pool(cluster, pool)
        return 200, self.start_operation(project, location, op_type, pool["selfLink"], key, done)

    def m_clusters_nodePools_setAutoscaling(self, project, location, cluster, name, body):
        auto = body.get("autoscaling", {})
        if auto.get("enabled") and int(auto.get("minNodeCount", 0)) > int(auto.get("maxNodeCount", 0)):
            raise ApiError(400, "Node pool autoscaling: min_node_count must be <= max_node_count.")
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_AUTOSCALING",
                             lambda p: p.__setitem__("autoscaling", auto))

    def m_clusters_nodePools_setManagement(self, project, location, cluster, name, body):
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_MANAGEMENT",
                             lambda p: p.__setitem__("management", body.get("management", {})), sync=False)

    def m_clusters_nodePools_setSize(self, project, location, cluster, name, body):
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_SIZE",
                             lambda p: p.__setitem__("initialNodeCount", int(body.get("nodeCount", 0))))

    def m_clusters_nodePools_update(self, project, location, cluster_name, name, body):
        cluster = self._cluster(project, location, cluster_name)
        pool = self._pool(cluster, name)
        if "workloadMetadataConfig" in body:
            self._check_workload_metadata(cluster, body)
        if "gcfsConfig" in body:
            self._check_gcfs(body, body.get("imageType") or pool["config"].get("imageType"))

        def mutate(p):
            config = p["config"]
            if "locations" in body:
                p["locations"] = body["locations"]
            for field, inner in (("labels", "labels"), ("taints", "taints"), ("resourceLabels", "labels")):
                if field in body:
                    config[field] = (body[field] or {}).get(inner) or ({} if inner == "labels" else [])
            for field in ("workloadMetadataConfig", "gcfsConfig", "accelerators", "machineType", "diskType",
                          "diskSizeGb"):
                if field in body:
                    config[field] = body[field]
            if body.get("imageType"):
                config["imageType"] = body["imageType"].upper()
        return self._pool_op(project, location, cluster_name, name, "UPDATE_CLUSTER", mutate)

    # operations --------------------------------------------------------------------------------
    def m_operations_get(self, project, location, name, body):
        return 200, self.poll_operation(project, location, name)


class _Handler(JsonHandler):
    """GKE's errors carry the status name and a reason; its request log has no API column."""

    sim: GkeSimulator = None

    def _match(self, verb, path):
        return self.sim.discovery.match(verb, path)

    def _log(self, verb, path, method_id, status):
        with self.sim.lock:
            self.sim.requests.append((verb, path, method_id, status))

    def _answer(self, verb, path, query, body):
        return self.sim.handle(verb, path, body)


def main():
    parser = argparse.ArgumentParser(description="GKE Container API v1 simulator")
    parser.add_argument("--op-seconds", type=float, default=1.0)
    args = parser.parse_args()
    sim = GkeSimulator(op_seconds=args.op_seconds).serve()
    print(sim.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
