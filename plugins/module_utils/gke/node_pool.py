# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gke_node_pool: the GPU node pool body, in-place updates (setAutoscaling, update, setManagement), the run.

What GKE answers is compared in GKE's own terms: proto3 JSON drops zero and false values (a pool
with min_node_count 0 reports no minNodeCount), image types come back upper-case and OAuth scope
aliases as URLs. local_stack/simulators/README.md lists each such behaviour with its source.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.client import ERROR_STATES
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.plan import (
    Resource, canonical_scopes, change, converge, differs, nested,
)

# G2 machine types come with a fixed number of NVIDIA L4 GPUs attached (https://cloud.google.com/compute/docs/gpus).
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-24": 2,
           "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8}
# Image streaming needs Container-Optimized OS with containerd
# (https://cloud.google.com/kubernetes-engine/docs/how-to/image-streaming, Requirements).
IMAGE_STREAMING_IMAGE = "COS_CONTAINERD"


def pool_options():
    """The options that describe a pool: gke_node_pool's, and each item of gke_cluster's node_pools."""
    return dict(
        name=dict(type="str", required=True),
        machine_type=dict(type="str", default="n1-standard-4"),
        disk_size_gb=dict(type="int", default=100),
        disk_type=dict(type="str"),
        image_type=dict(type="str"),
        oauth_scopes=dict(type="list", elements="str", default=["https://www.googleapis.com/auth/cloud-platform"]),
        service_account=dict(type="str"),
        spot=dict(type="bool", default=False),
        accelerator_type=dict(type="str"),
        accelerator_count=dict(type="int"),
        gpu_driver_version=dict(type="str", default="DEFAULT", choices=["DEFAULT", "LATEST", "INSTALLATION_DISABLED"]),
        gpu_sharing_strategy=dict(type="str", choices=["TIME_SHARING", "MPS", "NONE"]),
        max_shared_clients_per_gpu=dict(type="int"),
        image_streaming=dict(type="bool"),
        initial_node_count=dict(type="int", default=1),
        min_node_count=dict(type="int"),
        max_node_count=dict(type="int"),
        node_locations=dict(type="list", elements="str"),
        labels=dict(type="dict"),
        taints=dict(type="list", elements="dict", options=dict(
            key=dict(type="str", required=True, no_log=False), value=dict(type="str"),
            effect=dict(type="str", required=True, choices=["NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"]))),
        workload_metadata=dict(type="str", choices=["GKE_METADATA", "GCE_METADATA"]),
        auto_repair=dict(type="bool", default=True),
        auto_upgrade=dict(type="bool", default=True),
    )


def initial_pools(items, option="node_pools", reserved=(), workload_identity=True):
    """NodePool bodies for pools created with the cluster; items take gke_node_pool's options.

    Every problem is reported at once, naming the item (node_pools[1].max_node_count ...).
    """
    validator = ArgumentSpecValidator(pool_options())
    bodies, problems, seen = [], [], set(reserved)
    for index, item in enumerate(items or []):
        where = f"{option}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a dict of gke_node_pool options (name, machine_type, ...)")
            continue
        result = validator.validate(item)
        if result.error_messages:
            problems.extend(f"{where}: {message}" for message in result.error_messages)
            continue
        params = result.validated_parameters
        problems.extend(f"{where}: {problem}" for problem in validate(params, workload_identity))
        if params["name"] in seen:
            problems.append(f"{where}: pool name {params['name']!r} is used twice — give each pool its own name")
        seen.add(params["name"])
        bodies.append(desired_pool(params, workload_identity))
    if problems:
        raise GcpError("; ".join(problems))
    return bodies


def _taints(taints):
    return [{"key": t["key"], "value": t.get("value") or "", "effect": t["effect"]} for t in taints or []]


def _autoscaling(params):
    if params["min_node_count"] is None and params["max_node_count"] is None:
        return None
    return {"enabled": True, "minNodeCount": params["min_node_count"], "maxNodeCount": params["max_node_count"]}


def accelerator_count(params):
    """GPUs per node: as set, else what the machine type comes with (G2), else 1."""
    if params.get("accelerator_count") is not None:
        return params["accelerator_count"]
    return G2_GPUS.get(params["machine_type"], 1)


def _sharing(params):
    strategy = params.get("gpu_sharing_strategy")
    if strategy in (None, "NONE"):
        return None
    return {"gpuSharingStrategy": strategy, "maxSharedClientsPerGpu": str(params.get("max_shared_clients_per_gpu"))}


def workload_metadata(params, workload_identity):
    """The metadata mode to converge to: as set, else GKE_METADATA on a Workload Identity cluster
    (what GKE gives new pools there), else None (GKE's default, not compared)."""
    if params.get("workload_metadata"):
        return params["workload_metadata"]
    return "GKE_METADATA" if workload_identity else None


def validate(params, workload_identity=True):
    """Problems a request would hit at the API, reported before any call, naming the option."""
    problems = []
    lo, hi = params["min_node_count"], params["max_node_count"]
    if (lo is None) != (hi is None):
        problems.append("min_node_count and max_node_count go together: set both to enable autoscaling, or neither")
    elif lo is not None and (lo < 0 or hi < 1 or lo > hi):
        problems.append(f"min_node_count ({lo}) must be >= 0 and <= max_node_count ({hi}), and max_node_count >= 1")
    machine, accel = params["machine_type"], params["accelerator_type"]
    if params.get("accelerator_count") is not None and not accel:
        problems.append("accelerator_count needs accelerator_type (for example nvidia-tesla-t4)")
    if accel == "nvidia-l4" and machine not in G2_GPUS:
        problems.append(f"accelerator_type nvidia-l4 runs only on G2 machine types (g2-standard-4, ...), not "
                        f"machine_type {machine!r}")
    if accel and accel.startswith("nvidia-tesla-") and not machine.startswith("n1-"):
        problems.append(f"accelerator_type {accel} attaches only to N1 machine types (n1-standard-4, ...), not "
                        f"machine_type {machine!r}; for L4 GPUs use a G2 machine type with accelerator_type nvidia-l4")
    if machine in G2_GPUS and accel and accel != "nvidia-l4":
        problems.append(f"machine_type {machine} comes with NVIDIA L4 GPUs: set accelerator_type nvidia-l4 (or leave "
                        "it unset)")
    if machine in G2_GPUS and accel and accelerator_count(params) != G2_GPUS[machine]:
        problems.append(f"accelerator_count ({accelerator_count(params)}) must be {G2_GPUS[machine]} for {machine}, "
                        "which comes with that many L4 GPUs (or leave accelerator_count unset)")
    strategy, clients = params.get("gpu_sharing_strategy"), params.get("max_shared_clients_per_gpu")
    if strategy not in (None, "NONE"):
        if not accel:
            problems.append(f"gpu_sharing_strategy {strategy} needs a GPU: set accelerator_type")
        if clients is None or clients < 2:
            problems.append(f"gpu_sharing_strategy {strategy} needs max_shared_clients_per_gpu >= 2 (containers "
                            f"sharing one GPU), got {clients}")
    elif clients is not None:
        problems.append("max_shared_clients_per_gpu needs gpu_sharing_strategy (TIME_SHARING or MPS)")
    image = (params.get("image_type") or IMAGE_STREAMING_IMAGE).upper()
    if params.get("image_streaming") and image != IMAGE_STREAMING_IMAGE:
        problems.append(f"image_streaming needs image_type {IMAGE_STREAMING_IMAGE}, not {params['image_type']!r}: "
                        "GKE streams images only to Container-Optimized OS nodes")
    if params.get("workload_metadata") == "GKE_METADATA" and not workload_identity:
        problems.append("workload_metadata GKE_METADATA needs Workload Identity on the cluster (GKE refuses it "
                        "otherwise): enable workload_identity on the cluster, or set workload_metadata GCE_METADATA")
    return problems


def desired_pool(params, workload_identity=True):
    config = {"machineType": params["machine_type"], "diskSizeGb": params["disk_size_gb"],
              "oauthScopes": canonical_scopes(params["oauth_scopes"])}
    for key, api in (("disk_type", "diskType"), ("service_account", "serviceAccount")):
        if params.get(key):
            config[api] = params[key]
    if params.get("image_type"):
        config["imageType"] = params["image_type"].upper()
    if params["spot"]:
        config["spot"] = True
    if params["accelerator_type"]:
        accel = {
            "acceleratorType": params["accelerator_type"],
            "acceleratorCount": str(accelerator_count(params)),
            "gpuDriverInstallationConfig": {"gpuDriverVersion": params["gpu_driver_version"]},
        }
        if _sharing(params):
            accel["gpuSharingConfig"] = _sharing(params)
        config["accelerators"] = [accel]
    if params.get("image_streaming") is not None:
        config["gcfsConfig"] = {"enabled": params["image_streaming"]}
    if params.get("labels") is not None:
        config["labels"] = params["labels"]
    if params.get("taints") is not None:
        config["taints"] = _taints(params["taints"])
    mode = workload_metadata(params, workload_identity)
    if mode:
        config["workloadMetadataConfig"] = {"mode": mode}
    body = {"name": params["name"], "initialNodeCount": params["initial_node_count"], "config": config,
            "management": {"autoRepair": params["auto_repair"], "autoUpgrade": params["auto_upgrade"]}}
    autoscaling = _autoscaling(params)
    if autoscaling:
        body["autoscaling"] = autoscaling
    if params.get("node_locations"):
        body["locations"] = params["node_locations"]
    return body


def _accelerator(pool):
    accels = nested(pool, "config", "accelerators", default=[]) or []
    return accels[0] if accels else {}


def autoscaling_view(pool):
    """The pool's autoscaling with proto3's dropped zeros put back (no minNodeCount means 0)."""
    have = pool.get("autoscaling") or {}
    return {"enabled": bool(have.get("enabled")), "minNodeCount": int(have.get("minNodeCount") or 0),
            "maxNodeCount": int(have.get("maxNodeCount") or 0)}


def sharing_view(accel):
    sharing = accel.get("gpuSharingConfig") or {}
    if not sharing.get("gpuSharingStrategy"):
        return "NONE", None
    return sharing["gpuSharingStrategy"], int(sharing.get("maxSharedClientsPerGpu") or 0)


def plan_pool(params, actual, workload_identity=True):
    return (_recreate_changes(params, actual) + _image_changes(params, actual)
            + _update_changes(params, actual, workload_identity))


def _recreate_if(field, before, after):
    """A recreate change of `field` when `after` is asked for and differs from `before`, as a list."""
    if after is not None and differs(before, after):
        return [change(field, before, after, "recreate")]
    return []


def _recreate_changes(params, actual):
    """The changes that need the pool deleted and created again."""
    config = actual.get("config", {})
    changes = _recreate_if("machine_type", config.get("machineType"), params["machine_type"])
    changes += _recreate_if("disk_size_gb", config.get("diskSizeGb"), params["disk_size_gb"])
    changes += _recreate_if("disk_type", config.get("diskType"), params.get("disk_type"))
    changes += _recreate_if("oauth_scopes", canonical_scopes(config.get("oauthScopes")),
                            canonical_scopes(params["oauth_scopes"]))
    changes += _recreate_if("service_account", config.get("serviceAccount"), params.get("service_account"))
    changes += _recreate_if("spot", bool(config.get("spot")), params["spot"])
    accel = _accelerator(actual)
    changes += _recreate_if("accelerator_type", accel.get("acceleratorType"), params["accelerator_type"] or None)
    if params["accelerator_type"]:
        changes += _recreate_if("accelerator_count", accel.get("acceleratorCount"), accelerator_count(params))
        changes += _recreate_if("gpu_driver_version", nested(accel, "gpuDriverInstallationConfig", "gpuDriverVersion"),
                                params["gpu_driver_version"])
        # GPU sharing is chosen when the pool is created (GKE time-sharing docs; Terraform: ForceNew).
        if params.get("gpu_sharing_strategy") is not None:
            strategy, clients = sharing_view(accel)
            want = params["gpu_sharing_strategy"]
            want_clients = params.get("max_shared_clients_per_gpu") if want != "NONE" else None
            if (strategy, clients) != (want, want_clients):
                changes.append(change("gpu_sharing", {"strategy": strategy, "max_shared_clients_per_gpu": clients},
                                      {"strategy": want, "max_shared_clients_per_gpu": want_clients}, "recreate"))
    return changes


def _image_changes(params, actual):
    """The image type and image streaming changes, in the order they can be made."""
    config = actual.get("config", {})
    # The image type changes in place through clusters.update with desiredNodePoolId (Terraform:
    # nodePoolNodeConfigUpdate); image streaming through nodePools.update. Streaming needs COS, so
    # it is turned off before a move away from COS and on after a move to it.
    image = (config.get("imageType") or IMAGE_STREAMING_IMAGE).upper()  # GKE's default image
    want_image = (params.get("image_type") or image).upper()
    streaming = bool(nested(config, "gcfsConfig", "enabled"))
    want_streaming = streaming if params.get("image_streaming") is None else params["image_streaming"]
    if want_streaming and want_image != IMAGE_STREAMING_IMAGE:
        raise GcpError(f"node pool {actual.get('name')!r} streams images, which needs image_type "
                       f"{IMAGE_STREAMING_IMAGE}: set image_streaming false to move it to {want_image}")
    image_change = change("image_type", image, want_image,
                          ("cluster", {"desiredNodePoolId": actual.get("name"), "desiredImageType": want_image}))
    streaming_change = change("image_streaming", streaming, want_streaming,
                              ("PUT", "", {"gcfsConfig": {"enabled": want_streaming}}, "update image streaming"))
    in_order = [streaming_change, image_change] if streaming and not want_streaming else [image_change, streaming_change]
    return [item for item in in_order if item["before"] != item["after"]]


def _update_changes(params, actual, workload_identity):
    """The changes made in place: autoscaling, locations, labels, taints, workload metadata, management."""
    config = actual.get("config", {})
    changes = []
    want_auto = _autoscaling(params)
    if want_auto:
        view = autoscaling_view(actual)
        if view != want_auto:
            changes.append(change("autoscaling", view, want_auto,
                                  ("POST", ":setAutoscaling", {"autoscaling": want_auto}, "set autoscaling")))
    # nodePools.update carries only the changed field (no nodeVersion/imageType, which the discovery
    # document calls "Required"): GKE accepts such partial updates; Terraform's google provider sends
    # its labels/taints/locations/workloadMetadataConfig/gcfsConfig updates the same way.
    if params.get("node_locations") and differs(actual.get("locations"), params["node_locations"]):
        changes.append(change("node_locations", actual.get("locations"), params["node_locations"],
                              ("PUT", "", {"locations": params["node_locations"]}, "update locations")))
    if params.get("labels") is not None and differs(config.get("labels") or {}, params["labels"]):
        changes.append(change("labels", config.get("labels") or {}, params["labels"],
                              ("PUT", "", {"labels": {"labels": params["labels"]}}, "update node labels")))
    if params.get("taints") is not None and differs(_taints(config.get("taints")), _taints(params["taints"])):
        changes.append(change("taints", _taints(config.get("taints")), _taints(params["taints"]),
                              ("PUT", "", {"taints": {"taints": _taints(params["taints"])}}, "update taints")))
    want_mode = workload_metadata(params, workload_identity)
    mode = nested(config, "workloadMetadataConfig", "mode") or ("GCE_METADATA" if not workload_identity else None)
    if want_mode and mode != want_mode:
        changes.append(change("workload_metadata", mode, want_mode,
                              ("PUT", "", {"workloadMetadataConfig": {"mode": want_mode}},
                               "update workload metadata")))
    management = actual.get("management") or {}
    want = {"autoRepair": params["auto_repair"], "autoUpgrade": params["auto_upgrade"]}
    have = {"autoRepair": bool(management.get("autoRepair")), "autoUpgrade": bool(management.get("autoUpgrade"))}
    if have != want:
        action = ("POST", ":setManagement", {"management": want}, "set management")
        changes.append(change("management", have, want, action))
    return changes


def pool_facts(pool):
    if not pool:
        return {}
    accel = _accelerator(pool)
    strategy, clients = sharing_view(accel)
    return {
        "name": pool.get("name"),
        "status": pool.get("status"),
        "version": pool.get("version"),
        "machine_type": nested(pool, "config", "machineType"),
        "image_type": nested(pool, "config", "imageType"),
        "spot": bool(nested(pool, "config", "spot")),
        "image_streaming": bool(nested(pool, "config", "gcfsConfig", "enabled")),
        "accelerator_type": accel.get("acceleratorType"),
        "accelerator_count": int(accel["acceleratorCount"]) if accel.get("acceleratorCount") else 0,
        "gpu_driver_version": nested(accel, "gpuDriverInstallationConfig", "gpuDriverVersion"),
        "gpu_sharing_strategy": strategy,
        "max_shared_clients_per_gpu": clients,
        "autoscaling": pool.get("autoscaling") or {},
        "node_locations": pool.get("locations"),
        "self_link": pool.get("selfLink"),
    }


class NodePool(Resource):
    """A node pool of a GKE cluster for the converge loop (gke/plan.py)."""

    key, kind = "node_pool", "node pool"

    def __init__(self, client, params, workload_identity):
        super().__init__(client, params)
        self.path = (params["project"], params["location"], params["cluster"])
        self.cluster, self.name, self.workload_identity = params["cluster"], params["name"], workload_identity

    def at_rest(self):
        return self.client.pool_at_rest(*self.path, self.name)

    def settled(self, what):
        """The pool once at rest; raise when it ended in an error state."""
        pool = self.at_rest()
        if pool is not None and pool.get("status") in ERROR_STATES:
            raise GcpError(f"{what}: node pool {self.name!r} of cluster {self.cluster!r} is {pool.get('status')} "
                           f"({pool.get('statusMessage') or 'no message'}); look at its operations in the Cloud "
                           "Console, then re-run with recreate=true to replace it")
        return pool

    def desired(self):
        return desired_pool(self.params, self.workload_identity)

    def create(self, desired):
        self.client.create_node_pool(*self.path, desired)

    def delete(self):
        self.client.delete_node_pool(*self.path, self.name)

    def plan(self, actual):
        return plan_pool(self.params, actual, self.workload_identity)

    def apply(self, changes):
        for item in changes:
            if item["action"][0] == "cluster":
                self.client.update_cluster(*self.path, item["action"][1])
                continue
            verb, suffix, body, what = item["action"]
            self.client.node_pool_call(*self.path, self.name, verb, suffix, body, what)

    def facts(self, actual):
        return pool_facts(actual)

    def broken(self, actual):
        return actual.get("status") in ("ERROR", "RUNNING_WITH_ERROR")

    def refuse_broken(self, actual):
        return (f"node pool {self.name!r} of cluster {self.cluster!r} is {actual.get('status')} "
                f"({actual.get('statusMessage') or 'no message'}); nothing was changed — set recreate=true "
                "to delete and recreate it (its nodes and workloads are lost), or repair it in the Cloud Console")


def run_pool(client, params, check_mode):
    project, location, cluster = params["project"], params["location"], params["cluster"]
    if not project:
        raise GcpError("project is required: set project (or GCP_PROJECT) to the Google Cloud project ID")
    actual_cluster = client.get_cluster(project, location, cluster)
    if actual_cluster is None:
        if params["state"] == "absent":
            return {"changed": False, "changes": [], "node_pool": {}, "diff": {"before": {}, "after": {}}}
        raise GcpError(f"cluster {cluster!r} does not exist in {project}/{location}; create it first "
                       "(rapids.triton_fil.gke_cluster) or fix cluster/location")
    workload_identity = bool(nested(actual_cluster, "workloadIdentityConfig", "workloadPool"))
    problems = validate(params, workload_identity) if params["state"] == "present" else []
    if problems:
        raise GcpError("; ".join(problems))
    # Plan against a resting pool: right after a create GKE is still working on it (and the cluster).
    return converge(NodePool(client, params, workload_identity), check_mode)
