# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gke_cluster: the cluster body to create, the in-place updates to converge, and the run."""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.node_pool import initial_pools
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.plan import (
    Resource, canonical_scopes, change, converge, differs, nested, is_zone, resource_name,
)

ADDONS = {
    "horizontal_pod_autoscaling": "horizontalPodAutoscaling",
    "http_load_balancing": "httpLoadBalancing",
    "gcs_fuse_csi_driver": "gcsFuseCsiDriverConfig",
}
DEFAULT_POOL = "default-pool"


def _addon_body(key, enabled):
    api = ADDONS[key]
    return {api: {"enabled": enabled}} if key == "gcs_fuse_csi_driver" else {api: {"disabled": not enabled}}


def _addon_actual(cluster, key):
    api = ADDONS[key]
    if key == "gcs_fuse_csi_driver":
        return bool(nested(cluster, "addonsConfig", api, "enabled", default=False))
    return not nested(cluster, "addonsConfig", api, "disabled", default=False)


def _authorized_networks(networks):
    return {"enabled": True, "cidrBlocks": [
        {k: v for k, v in (("cidrBlock", n["cidr_block"]), ("displayName", n.get("display_name"))) if v}
        for n in networks]}


def workload_pool(params):
    return f"{params['project']}.svc.id.goog" if params["workload_identity"] else ""


def node_locations(params):
    """The zones to ask for: a zonal cluster's list always holds its own zone (GKE wants the full list;
    Terraform adds the primary zone to node_locations the same way), or None to take GKE's default."""
    zones = list(dict.fromkeys(params.get("node_locations") or []))
    if not zones:
        return None
    if is_zone(params["location"]) and params["location"] not in zones:
        zones.insert(0, params["location"])
    return zones


def desired_cluster(params):
    """The Cluster body for clusters.create (Container API v1)."""
    addons = {}
    for key, enabled in (params.get("addons") or {}).items():
        if enabled is not None:
            addons.update(_addon_body(key, enabled))
    node_config = {"machineType": params["machine_type"], "diskSizeGb": params["disk_size_gb"],
                   "oauthScopes": canonical_scopes(params["oauth_scopes"])}
    if params["workload_identity"]:
        node_config["workloadMetadataConfig"] = {"mode": "GKE_METADATA"}
    body = {
        "name": params["name"],
        "nodePools": [{"name": DEFAULT_POOL, "initialNodeCount": params["initial_node_count"], "config": node_config}]
        + initial_pools(params.get("node_pools"), reserved=(DEFAULT_POOL,),
                        workload_identity=params["workload_identity"]),
        "addonsConfig": addons,
        "releaseChannel": {"channel": params["release_channel"]},
        "ipAllocationPolicy": {"useIpAliases": True},
    }
    if node_locations(params):
        body["locations"] = node_locations(params)
    for key, api in (("network", "network"), ("subnetwork", "subnetwork")):
        if params.get(key):
            body[api] = params[key]
    if params["workload_identity"]:
        body["workloadIdentityConfig"] = {"workloadPool": workload_pool(params)}
    if params["private_nodes"]:
        body["privateClusterConfig"] = {"enablePrivateNodes": True,
                                        "masterIpv4CidrBlock": params["master_ipv4_cidr_block"]}
    if params.get("master_authorized_networks") is not None:
        body["masterAuthorizedNetworksConfig"] = _authorized_networks(params["master_authorized_networks"])
    if params.get("labels") is not None:
        body["resourceLabels"] = params["labels"]
    return body


def plan_cluster(params, actual):
    """Changes between the options the user set and the actual cluster."""
    changes = []
    default_pool = next((p for p in actual.get("nodePools", []) if p.get("name") == DEFAULT_POOL), None)

    def recreate_if(field, before, after):
        if after is not None and differs(before, after):
            changes.append(change(field, before, after, "recreate"))

    # GKE reports the network and subnetwork by name; a self-link or relative path names the same one.
    recreate_if("network", resource_name(actual.get("network")), resource_name(params.get("network")))
    recreate_if("subnetwork", resource_name(actual.get("subnetwork")), resource_name(params.get("subnetwork")))
    recreate_if("private_nodes", bool(nested(actual, "privateClusterConfig", "enablePrivateNodes", default=False)),
                params["private_nodes"])
    if params["private_nodes"]:
        recreate_if("master_ipv4_cidr_block", nested(actual, "privateClusterConfig", "masterIpv4CidrBlock"),
                    params["master_ipv4_cidr_block"])
    if default_pool is not None:
        recreate_if("machine_type", nested(default_pool, "config", "machineType"), params["machine_type"])
        recreate_if("disk_size_gb", nested(default_pool, "config", "diskSizeGb"), params["disk_size_gb"])
        recreate_if("oauth_scopes", canonical_scopes(nested(default_pool, "config", "oauthScopes")),
                    canonical_scopes(params["oauth_scopes"]))

    zones, have = node_locations(params), list(actual.get("locations") or [])
    if zones and differs(have, zones):
        # GKE cannot add and remove zones in one request: add first, then remove (as Terraform does).
        steps = [{"desiredLocations": zones}]
        if set(zones) - set(have) and set(have) - set(zones):
            steps.insert(0, {"desiredLocations": have + [z for z in zones if z not in have]})
        changes.append(change("node_locations", have, zones, ("updates", steps)))
    channel = nested(actual, "releaseChannel", "channel", default="UNSPECIFIED")
    if differs(channel, params["release_channel"]):
        changes.append(change("release_channel", channel, params["release_channel"],
                              ("update", {"desiredReleaseChannel": {"channel": params["release_channel"]}})))
    pool = nested(actual, "workloadIdentityConfig", "workloadPool", default="")
    if differs(pool or "", workload_pool(params)):
        changes.append(change("workload_identity", pool or None, workload_pool(params) or None,
                              ("update", {"desiredWorkloadIdentityConfig": {"workloadPool": workload_pool(params)}})))
    if params.get("master_authorized_networks") is not None:
        want = _authorized_networks(params["master_authorized_networks"])
        have = actual.get("masterAuthorizedNetworksConfig") or {"enabled": False}
        if differs(have.get("enabled", False), True) or differs(have.get("cidrBlocks", []), want["cidrBlocks"]):
            changes.append(change("master_authorized_networks", have.get("cidrBlocks", []), want["cidrBlocks"],
                                  ("update", {"desiredMasterAuthorizedNetworksConfig": want})))
    addons = {}
    before, after = {}, {}
    for key, enabled in (params.get("addons") or {}).items():
        if enabled is None:
            continue
        current = _addon_actual(actual, key)
        if current != enabled:
            addons.update(_addon_body(key, enabled))
            before[key], after[key] = current, enabled
    if addons:
        changes.append(change("addons", before, after, ("addons", addons)))
    if params.get("labels") is not None and differs(actual.get("resourceLabels") or {}, params["labels"]):
        changes.append(change("labels", actual.get("resourceLabels") or {}, params["labels"],
                              ("labels", params["labels"])))
    return changes


def cluster_facts(cluster):
    if not cluster:
        return {}
    return {
        "name": cluster.get("name"),
        "location": cluster.get("location"),
        "status": cluster.get("status"),
        "endpoint": cluster.get("endpoint"),
        "private_endpoint": nested(cluster, "privateClusterConfig", "privateEndpoint"),
        "ca_certificate": nested(cluster, "masterAuth", "clusterCaCertificate"),
        "master_version": cluster.get("currentMasterVersion"),
        "node_locations": cluster.get("locations"),
        "workload_pool": nested(cluster, "workloadIdentityConfig", "workloadPool"),
        "release_channel": nested(cluster, "releaseChannel", "channel"),
        "node_pools": [p.get("name") for p in cluster.get("nodePools", [])],
        "labels": cluster.get("resourceLabels") or {},
        "self_link": cluster.get("selfLink"),
    }


class Cluster(Resource):
    """A GKE cluster for the converge loop (gke/plan.py)."""

    key, kind = "cluster", "cluster"

    def __init__(self, client, params):
        super().__init__(client, params)
        self.project, self.location, self.name = params["project"], params["location"], params["name"]
        self.where = f"{self.project}/{self.location}"

    def at_rest(self):
        return self.client.cluster_at_rest(self.project, self.location, self.name)

    def settled(self, what):
        """The cluster once GKE has finished with it (it keeps working after its own operations end)."""
        cluster = self.at_rest()
        if cluster is None:
            raise GcpError(f"{what} cluster {self.name!r} in {self.where}: it disappeared meanwhile; re-run to converge")
        if cluster.get("status") == "ERROR":
            raise GcpError(f"{what} cluster {self.name!r} in {self.where}: it is in ERROR "
                           f"({cluster.get('statusMessage') or 'no message'}); re-run with recreate=true to replace it")
        return cluster

    def desired(self):
        return desired_cluster(self.params)

    def create(self, desired):
        self.client.create_cluster(self.project, self.location, desired)

    def delete(self):
        self.client.delete_cluster(self.project, self.location, self.name)

    def plan(self, actual):
        return plan_cluster(self.params, actual)

    def apply(self, changes):
        client, project, location, name = self.client, self.project, self.location, self.name
        for item in changes:
            kind, payload = item["action"]
            if kind == "update":
                client.update_cluster(project, location, name, payload)
            elif kind == "updates":
                for step in payload:
                    client.update_cluster(project, location, name, step)
            elif kind == "addons":
                client.call("POST", f"{client.cluster_path(project, location, name)}:setAddons",
                            {"addonsConfig": payload}, f"set addons of cluster {name!r} in {self.where}")
            elif kind == "labels":
                client.set_labels(project, location, name, payload)

    def facts(self, actual):
        return cluster_facts(actual)

    def planned(self):
        return {"name": self.name, "location": self.location}

    def broken(self, actual):
        return actual.get("status") == "ERROR"

    def refuse_broken(self, actual):
        return (f"cluster {self.name!r} in {self.where} is in ERROR ({actual.get('statusMessage', '')}); "
                "nothing was changed — set recreate=true to delete and recreate it")

    def absent_view(self, actual):
        return {"cluster": self.name, "status": actual.get("status")}


def run_cluster(client, params, check_mode):
    if not params["project"]:
        raise GcpError("project is required: set project (or GCP_PROJECT) to the Google Cloud project ID")
    return converge(Cluster(client, params), check_mode)
