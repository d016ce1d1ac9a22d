"""A GKE control-plane simulator: the Container API v1 methods the collection uses, in memory.

Every request body is validated against Google's container v1 discovery document (unknown field or
wrong type -> 400 INVALID_ARGUMENT, as Google answers). Long-running operations move
PENDING -> RUNNING -> DONE over ``op_seconds``. Errors are Google-shaped JSON. Every request is
recorded so tests can count calls, and faults can be injected:

    sim.inject("status", 503, count=2, match="setAutoscaling")   # transient bursts (429/503)
    sim.inject("drop", count=1, match="POST")                     # connection closed without answer
    sim.inject("op_error", message="...", match="CREATE_NODE_POOL")  # the next such operation ends in ERROR
    sim.inject("status", 403, reason="QUOTA_EXCEEDED", message="Insufficient regional quota ...")

Run standalone (prints its URL): python tests/simulators/gke.py --op-seconds 1
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
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

try:
    from .discovery import Discovery
    from .google_http import ApiError, FaultQueue, JsonHandler
except ImportError:  # run as a script
    from discovery import Discovery  # type: ignore[no-redef]
    from google_http import ApiError, FaultQueue, JsonHandler  # type: ignore[no-redef]

MASTER_VERSION = "1.33.5-gke.1201000"
ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nRkFLRS1HS0UtQ0E=\n-----END CERTIFICATE-----\n").decode()
DEFAULT_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only",
                  "https://www.googleapis.com/auth/logging.write",
                  "https://www.googleapis.com/auth/monitoring"]


def fingerprint(labels):
    return hashlib.sha256(json.dumps(labels or {}, sort_keys=True).encode()).hexdigest()[:16]


def deep_merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class GkeSimulator(FaultQueue):
    """State, operations and faults; ``serve()`` exposes them over HTTP on 127.0.0.1."""

    def __init__(self, op_seconds=0.3, control_plane=None):
        """op_seconds: how long operations take, one number or {operationType: seconds, "default": s}.

        A CREATE_CLUSTER that brings up node pools besides the first takes
        op_seconds["CREATE_CLUSTER_EXTRA_POOL"] longer per extra pool (0 unless given): GKE creates a
        cluster's initial pools inside the cluster operation, in parallel, not one operation each.
        """
        self.discovery = Discovery("container.v1")
        self.op_seconds = op_seconds
        # A real Kubernetes control plane (local_stack/controlplane) the clusters hand out: their endpoint and
        # CA are its own, and what GKE does inside a cluster (nodes of each pool, GMP CRDs) happens there.
        self.control_plane = control_plane
        self._hooks = []          # control plane calls queued under the lock, run outside it
        self.lock = threading.RLock()
        self.clusters = {}        # (project, location, name) -> cluster
        self.operations = {}      # (project, location, op name) -> (operation, started, on_done, error, seconds)
        self.busy = {}            # (project, location, cluster) -> op name still running
        self.requests = []        # (method, path, method id or None, status)
        self.faults = []
        self.schema_rejections = []  # (method id, problems) of bodies the discovery document rejected
        self._ids = itertools.count(1)
        self.server = None
        self.url = None

    def duration(self, op_type):
        """Seconds an operation of this type takes: op_seconds, or op_seconds[op_type] / ["default"]."""
        if isinstance(self.op_seconds, dict):
            return float(self.op_seconds.get(op_type, self.op_seconds.get("default", 0.3)))
        return float(self.op_seconds)

    # ----------------------------------------------------------------- test API
    def inject(self, kind, status=None, *, count=1, match="", reason=None, message=None):
        with self.lock:
            self.faults.append({"kind": kind, "status": status, "count": count, "match": match,
                                "reason": reason, "message": message})

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

    def serve(self):
        handler = type("Handler", (_Handler,), {"sim": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # ----------------------------------------------------------------- operations
    def start_operation(self, project, location, op_type, target, cluster_key, on_done, extra_seconds=0.0):
        name = f"operation-{int(time.time() * 1000)}-{next(self._ids):04d}"
        op = {"name": name, "operationType": op_type, "status": "PENDING", "location": location,
              "zone": location, "selfLink": f"{self.url}/v1/projects/{project}/locations/{location}/operations/{name}",
              "targetLink": target, "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        error = self.take_fault(("op_error",), op_type)
        seconds = self.duration(op_type) + extra_seconds
        self.operations[(project, location, name)] = (op, time.monotonic(), on_done, error, seconds)
        if cluster_key:
            self.busy[cluster_key] = name
        return copy.deepcopy(op)

    def poll_operation(self, project, location, name):
        entry = self.operations.get((project, location, name))
        if entry is None:
            raise ApiError(404, f"Operation \"projects/{project}/locations/{location}/operations/{name}\" not found.")
        op, started, on_done, error, duration = entry
        elapsed = time.monotonic() - started
        if op["status"] != "DONE":
            if elapsed >= duration:
                op["status"] = "DONE"
                op["endTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if error:
                    op["error"] = {"code": 13, "message": error["message"] or "Internal error."}
                    op["statusMessage"] = op["error"]["message"]
                    on_done(False)
                else:
                    on_done(True)
                for key, busy in list(self.busy.items()):
                    if busy == name:
                        del self.busy[key]
            elif elapsed >= duration / 3:
                op["status"] = "RUNNING"
        return copy.deepcopy(op)

    def _hook(self, method, *args):
        if self.control_plane is not None:
            self._hooks.append((method, args))

    def run_hooks(self):
        """Run the control plane calls queued by finished operations (outside the lock, before answering)."""
        with self.lock:
            hooks, self._hooks = self._hooks, []
        for method, args in hooks:
            getattr(self.control_plane, method)(*args)

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
            raise ApiError(400, f"Cluster is running incompatible operation {self.busy[key]}.", "FAILED_PRECONDITION")

    def _zones(self, location, node_locations):
        if node_locations:
            return list(node_locations)
        return [location] if ZONE.match(location) else [f"{location}-a", f"{location}-b", f"{location}-c"]

    def _new_pool(self, pool, location, cluster_locations):
        pool = copy.deepcopy(pool)
        config = pool.setdefault("config", {})
        config.setdefault("machineType", "e2-medium")
        config.setdefault("diskSizeGb", 100)
        config.setdefault("diskType", "pd-balanced")
        config.setdefault("imageType", "COS_CONTAINERD")
        config.setdefault("oauthScopes", DEFAULT_SCOPES)
        config.setdefault("serviceAccount", "default")
        config.setdefault("metadata", {"disable-legacy-endpoints": "true"})
        for accel in config.get("accelerators", []):
            accel["acceleratorCount"] = str(accel.get("acceleratorCount", "1"))
        pool.setdefault("initialNodeCount", 1)
        pool.setdefault("locations", list(cluster_locations))
        pool.setdefault("management", {"autoUpgrade": True, "autoRepair": True})
        pool.setdefault("autoscaling", {})
        pool["version"] = MASTER_VERSION
        pool["status"] = "PROVISIONING"
        pool["podIpv4CidrSize"] = 24
        return pool

    def handle(self, verb, path, body):
        """Dispatch one validated request; returns (status, json)."""
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
            handler = getattr(self, "m_" + method_id.replace("container.projects.locations.", "").replace(".", "_"), None)
            if handler is None:
                raise ApiError(501, f"{method_id} is not simulated", "UNIMPLEMENTED")
            return method_id, handler(*params, body=body or {})

    # clusters ----------------------------------------------------------------------------------
    def m_clusters_get(self, project, location, name, body):
        return 200, copy.deepcopy(self._cluster(project, location, name))

    def m_clusters_list(self, project, location, body):
        return 200, {"clusters": [copy.deepcopy(c) for (p, l, _name), c in self.clusters.items()
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
        cluster = copy.deepcopy(spec)
        zones = self._zones(location, spec.get("locations"))
        cluster["locations"] = zones
        pools = spec.get("nodePools") or [{"name": "default-pool", "config": spec.get("nodeConfig", {}),
                                           "initialNodeCount": spec.get("initialNodeCount", 3)}]
        cluster["nodePools"] = [self._new_pool(p, location, zones) for p in pools]
        cluster.pop("nodeConfig", None)
        cluster.pop("initialNodeCount", None)
        cluster.update({
            "status": "PROVISIONING", "location": location, "zone": location,
            "selfLink": f"{self.url}/v1/projects/{project}/locations/{location}/clusters/{name}",
            "endpoint": self.control_plane.endpoint if self.control_plane else f"34.{len(self.clusters) + 10}.0.1",
            "currentMasterVersion": MASTER_VERSION,
            "currentNodeVersion": MASTER_VERSION, "initialClusterVersion": MASTER_VERSION,
            "masterAuth": {"clusterCaCertificate": self.control_plane.ca_certificate if self.control_plane else FAKE_CA},
            "network": spec.get("network", "default"), "subnetwork": spec.get("subnetwork", "default"),
            "labelFingerprint": fingerprint(spec.get("resourceLabels")),
            "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        cluster.setdefault("addonsConfig", {})
        cluster["addonsConfig"].setdefault("horizontalPodAutoscaling", {})
        cluster["addonsConfig"].setdefault("httpLoadBalancing", {})
        cluster.setdefault("releaseChannel", {"channel": "REGULAR"})
        cluster.setdefault("ipAllocationPolicy", {"useIpAliases": True})
        self.clusters[key] = cluster

        def done(ok):
            cluster["status"] = "RUNNING" if ok else "ERROR"
            for pool in cluster["nodePools"]:
                pool["status"] = "RUNNING" if ok else "ERROR"
            if ok:
                # Managed collection (GMP) is on by default for new Standard clusters since GKE 1.27
                # (GKE docs, "Managed collection"): its CRDs exist before any workload.
                managed = ((cluster.get("monitoringConfig") or {}).get("managedPrometheusConfig") or {}).get("enabled", True)
                if managed:
                    self._hook("enable_managed_prometheus")
                for pool in cluster["nodePools"]:
                    self._hook("sync_node_pool", name, copy.deepcopy(pool))
        extra = 0.0
        if isinstance(self.op_seconds, dict):
            extra = (len(pools) - 1) * float(self.op_seconds.get("CREATE_CLUSTER_EXTRA_POOL", 0.0))
        return 200, self.start_operation(project, location, "CREATE_CLUSTER", cluster["selfLink"], key, done, extra)

    def m_clusters_delete(self, project, location, name, body):
        key = (project, location, name)
        cluster = self._cluster(project, location, name)
        self._not_busy(key)
        cluster["status"] = "STOPPING"

        def done(ok):
            if ok:
                self.clusters.pop(key, None)
                self._hook("delete_cluster", name)
        return 200, self.start_operation(project, location, "DELETE_CLUSTER", cluster["selfLink"], key, done)

    def _cluster_op(self, project, location, name, op_type, mutate):
        key = (project, location, name)
        cluster = self._cluster(project, location, name)
        self._not_busy(key)
        cluster["status"] = "RECONCILING"

        def done(ok):
            if ok:
                mutate(cluster)
            cluster["status"] = "RUNNING"
        return 200, self.start_operation(project, location, op_type, cluster["selfLink"], key, done)

    def m_clusters_update(self, project, location, name, body):
        update = body.get("update") or {}
        desired = [k for k in update if k.startswith("desired")]
        if len(desired) != 1:
            raise ApiError(400, "Exactly one update can be applied to a cluster with each request; "
                                f"got {len(desired)} ({', '.join(desired) or 'none'}).")
        field = desired[0]
        value = update[field]

        def mutate(cluster):
            if field == "desiredLocations":
                cluster["locations"] = list(value)
            elif field == "desiredReleaseChannel":
                cluster["releaseChannel"] = value
            elif field == "desiredWorkloadIdentityConfig":
                cluster["workloadIdentityConfig"] = value
            elif field == "desiredMasterAuthorizedNetworksConfig":
                cluster["masterAuthorizedNetworksConfig"] = value
            elif field == "desiredAddonsConfig":
                deep_merge(cluster.setdefault("addonsConfig", {}), value)
            else:
                cluster.setdefault("simulatorUnmodelled", {})[field] = value
        return self._cluster_op(project, location, name, "UPDATE_CLUSTER", mutate)

    def m_clusters_setAddons(self, project, location, name, body):
        return self._cluster_op(project, location, name, "SET_ADDONS",
                                lambda c: c.__setitem__("addonsConfig", deep_merge(c.get("addonsConfig", {}), body["addonsConfig"])))

    def m_clusters_setResourceLabels(self, project, location, name, body):
        cluster = self._cluster(project, location, name)
        if body.get("labelFingerprint") != cluster["labelFingerprint"]:
            raise ApiError(400, "Labels could not be set due to fingerprint mismatch.", "FAILED_PRECONDITION")

        def mutate(c):
            c["resourceLabels"] = body.get("resourceLabels", {})
            c["labelFingerprint"] = fingerprint(c["resourceLabels"])
        return self._cluster_op(project, location, name, "SET_LABELS", mutate)

    # node pools --------------------------------------------------------------------------------
    def m_clusters_nodePools_get(self, project, location, cluster, name, body):
        return 200, copy.deepcopy(self._pool(self._cluster(project, location, cluster), name))

    def m_clusters_nodePools_list(self, project, location, cluster, body):
        return 200, {"nodePools": copy.deepcopy(self._cluster(project, location, cluster)["nodePools"])}

    def m_clusters_nodePools_create(self, project, location, cluster_name, body):
        key = (project, location, cluster_name)
        cluster = self._cluster(project, location, cluster_name)
        spec = body["nodePool"]
        if any(p["name"] == spec.get("name") for p in cluster["nodePools"]):
            raise ApiError(409, f"Already exists: projects/{project}/locations/{location}/clusters/"
                                f"{cluster_name}/nodePools/{spec.get('name')}.")
        auto = spec.get("autoscaling") or {}
        if auto.get("enabled") and int(auto.get("minNodeCount", 0)) > int(auto.get("maxNodeCount", 0)):
            raise ApiError(400, "Node pool autoscaling: min_node_count must be <= max_node_count.")
        self._not_busy(key)
        pool = self._new_pool(spec, location, cluster["locations"])
        pool["selfLink"] = f"{cluster['selfLink']}/nodePools/{pool['name']}"
        cluster["nodePools"].append(pool)

        def done(ok):
            if ok:
                pool["status"] = "RUNNING"
                self._hook("sync_node_pool", cluster_name, copy.deepcopy(pool))
            else:
                pool["status"] = "ERROR"
        return 200, self.start_operation(project, location, "CREATE_NODE_POOL", pool["selfLink"], key, done)

    def m_clusters_nodePools_delete(self, project, location, cluster_name, name, body):
        key = (project, location, cluster_name)
        cluster = self._cluster(project, location, cluster_name)
        pool = self._pool(cluster, name)
        self._not_busy(key)
        pool["status"] = "STOPPING"

        def done(ok):
            if ok:
                cluster["nodePools"] = [p for p in cluster["nodePools"] if p["name"] != name]
                self._hook("delete_node_pool", cluster_name, name)
        return 200, self.start_operation(project, location, "DELETE_NODE_POOL", pool.get("selfLink", ""), key, done)

    def _pool_op(self, project, location, cluster_name, name, op_type, mutate):
        key = (project, location, cluster_name)
        cluster = self._cluster(project, location, cluster_name)
        pool = self._pool(cluster, name)
        self._not_busy(key)
        pool["status"] = "RECONCILING"

        def done(ok):
            if ok:
                mutate(pool)
                self._hook("sync_node_pool", cluster_name, copy.deepcopy(pool))
            pool["status"] = "RUNNING"
        return 200, self.start_operation(project, location, op_type, pool.get("selfLink", ""), key, done)

    def m_clusters_nodePools_setAutoscaling(self, project, location, cluster, name, body):
        auto = body.get("autoscaling", {})
        if auto.get("enabled") and int(auto.get("minNodeCount", 0)) > int(auto.get("maxNodeCount", 0)):
            raise ApiError(400, "Node pool autoscaling: min_node_count must be <= max_node_count.")
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_AUTOSCALING",
                             lambda p: p.__setitem__("autoscaling", auto))

    def m_clusters_nodePools_setManagement(self, project, location, cluster, name, body):
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_MANAGEMENT",
                             lambda p: p.__setitem__("management", body.get("management", {})))

    def m_clusters_nodePools_setSize(self, project, location, cluster, name, body):
        return self._pool_op(project, location, cluster, name, "SET_NODE_POOL_SIZE",
                             lambda p: p.__setitem__("initialNodeCount", int(body.get("nodeCount", 0))))

    def m_clusters_nodePools_update(self, project, location, cluster, name, body):
        def mutate(pool):
            config = pool["config"]
            if "locations" in body:
                pool["locations"] = body["locations"]
            if "labels" in body:
                config["labels"] = body["labels"].get("labels", {})
            if "taints" in body:
                config["taints"] = body["taints"].get("taints", [])
            if "workloadMetadataConfig" in body:
                config["workloadMetadataConfig"] = body["workloadMetadataConfig"]
            if "resourceLabels" in body:
                config["resourceLabels"] = body["resourceLabels"].get("labels", {})
            if "accelerators" in body:
                config["accelerators"] = body["accelerators"]
        return self._pool_op(project, location, cluster, name, "UPDATE_CLUSTER", mutate)

    # operations --------------------------------------------------------------------------------
    def m_operations_get(self, project, location, name, body):
        return 200, self.poll_operation(project, location, name)


class _Handler(JsonHandler):
    sim: GkeSimulator = None

    def _dispatch(self, verb):
        sim = self.sim
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        method_id = None
        found = sim.discovery.match(verb, path)
        if found:
            method_id = found[0]
        text = f"{verb} {path} {method_id or ''}"
        fault = sim.take_fault(("drop",), text)
        if fault:
            sim.requests.append((verb, path, method_id, None))
            self.close_connection = True
            self.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a reset / empty reply
            return
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            sim.requests.append((verb, path, method_id, 401))
            self._error(ApiError(401, "Request is missing required authentication credential.", "UNAUTHENTICATED"))
            return
        fault = sim.take_fault(("status",), text)
        if fault:
            sim.requests.append((verb, path, method_id, fault["status"]))
            self._error(ApiError(fault["status"], fault["message"] or "Simulated fault.", fault["reason"]))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            sim.requests.append((verb, path, method_id, 400))
            self._error(ApiError(400, "Invalid JSON payload received."))
            return
        try:
            method_id, (status, payload) = sim.handle(verb, path, body)
        except ApiError as exc:
            sim.requests.append((verb, path, method_id, exc.code))
            self._error(exc)
            return
        sim.requests.append((verb, path, method_id, status))
        sim.run_hooks()
        self._send(status, payload)


def main():
    parser = argparse.ArgumentParser(description="GKE Container API v1 simulator")
    parser.add_argument("--op-seconds", type=float, default=1.0)
    args = parser.parse_args()
    sim = GkeSimulator(op_seconds=args.op_seconds).serve()
    print(sim.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
