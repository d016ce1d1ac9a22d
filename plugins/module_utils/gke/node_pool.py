# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gke_node_pool: the GPU node pool body, in-place updates (setAutoscaling, update, setManagement), the run."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.plan import (
    change, diff_view, differs, dig, public_changes, refuse_recreate,
)


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
        accelerator_count=dict(type="int", default=1),
        gpu_driver_version=dict(type="str", default="DEFAULT", choices=["DEFAULT", "LATEST", "INSTALLATION_DISABLED"]),
        initial_node_count=dict(type="int", default=1),
        min_node_count=dict(type="int"),
        max_node_count=dict(type="int"),
        node_locations=dict(type="list", elements="str"),
        labels=dict(type="dict"),
        taints=dict(type="list", elements="dict", options=dict(
            key=dict(type="str", required=True, no_log=False), value=dict(type="str"),
            effect=dict(type="str", required=True, choices=["NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"]))),
        workload_metadata=dict(type="str", default="GKE_METADATA", choices=["GKE_METADATA", "GCE_METADATA"]),
        auto_repair=dict(type="bool", default=True),
        auto_upgrade=dict(type="bool", default=True),
    )


def initial_pools(items, option="node_pools", reserved=()):
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
        problems.extend(f"{where}: {problem}" for problem in validate(params))
        if params["name"] in seen:
            problems.append(f"{where}: pool name {params['name']!r} is used twice — give each pool its own name")
        seen.add(params["name"])
        bodies.append(desired_pool(params))
    if problems:
        raise GcpError("; ".join(problems))
    return bodies


def _taints(taints):
    return [{"key": t["key"], "value": t.get("value") or "", "effect": t["effect"]} for t in taints or []]


def _autoscaling(params):
    if params["min_node_count"] is None and params["max_node_count"] is None:
        return None
    return {"enabled": True, "minNodeCount": params["min_node_count"], "maxNodeCount": params["max_node_count"]}


def validate(params):
    """Problems a request would hit at the API, reported before any call, naming the option."""
    problems = []
    lo, hi = params["min_node_count"], params["max_node_count"]
    if (lo is None) != (hi is None):
        problems.append("min_node_count and max_node_count go together: set both to enable autoscaling, or neither")
    elif lo is not None and (lo < 0 or hi < 1 or lo > hi):
        problems.append(f"min_node_count ({lo}) must be >= 0 and <= max_node_count ({hi}), and max_node_count >= 1")
    if params["accelerator_count"] and not params["accelerator_type"]:
        problems.append("accelerator_count needs accelerator_type (for example nvidia-tesla-t4)")
    return problems


def desired_pool(params):
    config = {"machineType": params["machine_type"], "diskSizeGb": params["disk_size_gb"],
              "oauthScopes": params["oauth_scopes"]}
    for key, api in (("disk_type", "diskType"), ("image_type", "imageType"), ("service_account", "serviceAccount")):
        if params.get(key):
            config[api] = params[key]
    if params["spot"]:
        config["spot"] = True
    if params["accelerator_type"]:
        config["accelerators"] = [{
            "acceleratorType": params["accelerator_type"],
            "acceleratorCount": str(params["accelerator_count"] or 1),
            "gpuDriverInstallationConfig": {"gpuDriverVersion": params["gpu_driver_version"]},
        }]
    if params.get("labels") is not None:
        config["labels"] = params["labels"]
    if params.get("taints") is not None:
        config["taints"] = _taints(params["taints"])
    if params.get("workload_metadata"):
        config["workloadMetadataConfig"] = {"mode": params["workload_metadata"]}
    body = {"name": params["name"], "initialNodeCount": params["initial_node_count"], "config": config,
            "management": {"autoRepair": params["auto_repair"], "autoUpgrade": params["auto_upgrade"]}}
    autoscaling = _autoscaling(params)
    if autoscaling:
        body["autoscaling"] = autoscaling
    if params.get("node_locations"):
        body["locations"] = params["node_locations"]
    return body


def _accelerator(pool):
    accels = dig(pool, "config", "accelerators", default=[]) or []
    return accels[0] if accels else {}


def plan_pool(params, actual):
    changes = []
    config = actual.get("config", {})

    def recreate_if(field, before, after):
        if after is not None and differs(before, after):
            changes.append(change(field, before, after, "recreate"))

    recreate_if("machine_type", config.get("machineType"), params["machine_type"])
    recreate_if("disk_size_gb", config.get("diskSizeGb"), params["disk_size_gb"])
    recreate_if("disk_type", config.get("diskType"), params.get("disk_type"))
    recreate_if("image_type", config.get("imageType"), params.get("image_type"))
    recreate_if("oauth_scopes", config.get("oauthScopes"), params["oauth_scopes"])
    recreate_if("service_account", config.get("serviceAccount"), params.get("service_account"))
    recreate_if("spot", bool(config.get("spot", False)), params["spot"])
    accel = _accelerator(actual)
    recreate_if("accelerator_type", accel.get("acceleratorType"), params["accelerator_type"] or None)
    if params["accelerator_type"]:
        recreate_if("accelerator_count", accel.get("acceleratorCount"), params["accelerator_count"] or 1)
        recreate_if("gpu_driver_version", dig(accel, "gpuDriverInstallationConfig", "gpuDriverVersion"),
                    params["gpu_driver_version"])

    want_auto = _autoscaling(params)
    have_auto = actual.get("autoscaling") or {}
    if want_auto:
        view = {k: have_auto.get(k) for k in ("enabled", "minNodeCount", "maxNodeCount")}
        if differs(view, want_auto):
            changes.append(change("autoscaling", {k: v for k, v in view.items() if v is not None}, want_auto,
                                  ("POST", ":setAutoscaling", {"autoscaling": want_auto}, "set autoscaling")))
    # nodePools.update carries only the changed field (no nodeVersion/imageType, which the discovery
    # document calls "Required"): GKE accepts such partial updates; Terraform's google provider sends
    # its labels/taints/locations/workloadMetadataConfig updates the same way.
    if params.get("node_locations") and differs(actual.get("locations"), params["node_locations"]):
        changes.append(change("node_locations", actual.get("locations"), params["node_locations"],
                              ("PUT", "", {"locations": params["node_locations"]}, "update locations")))
    if params.get("labels") is not None and differs(config.get("labels") or {}, params["labels"]):
        changes.append(change("labels", config.get("labels") or {}, params["labels"],
                              ("PUT", "", {"labels": {"labels": params["labels"]}}, "update node labels")))
    if params.get("taints") is not None and differs(_taints(config.get("taints")), _taints(params["taints"])):
        changes.append(change("taints", _taints(config.get("taints")), _taints(params["taints"]),
                              ("PUT", "", {"taints": {"taints": _taints(params["taints"])}}, "update taints")))
    mode = dig(config, "workloadMetadataConfig", "mode")
    if params.get("workload_metadata") and differs(mode, params["workload_metadata"]):
        changes.append(change("workload_metadata", mode, params["workload_metadata"],
                              ("PUT", "", {"workloadMetadataConfig": {"mode": params["workload_metadata"]}},
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
    return {
        "name": pool.get("name"),
        "status": pool.get("status"),
        "version": pool.get("version"),
        "machine_type": dig(pool, "config", "machineType"),
        "accelerator_type": accel.get("acceleratorType"),
        "accelerator_count": int(accel["acceleratorCount"]) if accel.get("acceleratorCount") else 0,
        "gpu_driver_version": dig(accel, "gpuDriverInstallationConfig", "gpuDriverVersion"),
        "autoscaling": pool.get("autoscaling") or {},
        "node_locations": pool.get("locations"),
        "self_link": pool.get("selfLink"),
    }


def run_pool(client, params, check_mode):
    project, location, cluster, name = params["project"], params["location"], params["cluster"], params["name"]
    if not project:
        raise GcpError("project is required: set project (or GCP_PROJECT) to the Google Cloud project ID")
    problems = validate(params) if params["state"] == "present" else []
    if problems:
        raise GcpError("; ".join(problems))
    if client.get_cluster(project, location, cluster) is None:
        if params["state"] == "absent":
            return {"changed": False, "changes": [], "node_pool": {}, "diff": {"before": {}, "after": {}}}
        raise GcpError(f"cluster {cluster!r} does not exist in {project}/{location}; create it first "
                       "(rapids.triton_fil.gke_cluster) or fix cluster/location")
    actual = client.get_node_pool(project, location, cluster, name)
    if params["state"] == "absent":
        if actual is None:
            return {"changed": False, "changes": [], "node_pool": {}, "diff": {"before": {}, "after": {}}}
        if not check_mode:
            client.delete_node_pool(project, location, cluster, name)
        return {"changed": True, "changes": [{"field": "node_pool", "before": "present", "after": "absent"}],
                "node_pool": pool_facts(actual), "operations": client.operations,
                "diff": {"before": {"node_pool": name}, "after": {}}}
    desired = desired_pool(params)
    if actual is not None and actual.get("status") == "ERROR":
        # A pool whose creation failed never ran anything: replace it (GKE keeps it in ERROR otherwise).
        result = {"changed": True, "changes": [{"field": "node_pool", "before": "ERROR", "after": "present"}],
                  "node_pool": pool_facts(actual), "diff": {"before": {"status": "ERROR"}, "after": desired}}
        if not check_mode:
            client.delete_node_pool(project, location, cluster, name)
            client.create_node_pool(project, location, cluster, desired)
            result["node_pool"] = pool_facts(client.get_node_pool(project, location, cluster, name))
            result["operations"] = client.operations
        return result
    if actual is not None and actual.get("status") in ("PROVISIONING", "RECONCILING", "STOPPING"):
        raise GcpError(f"node pool {name!r} of cluster {cluster!r} is {actual.get('status')}; an operation is in "
                       "progress — re-run when it has finished")
    if actual is None:
        result = {"changed": True, "changes": [{"field": "node_pool", "before": "absent", "after": "present"}],
                  "node_pool": {"name": name}, "diff": {"before": {}, "after": desired}}
        if not check_mode:
            client.create_node_pool(project, location, cluster, desired)
            result["node_pool"] = pool_facts(client.get_node_pool(project, location, cluster, name))
            result["operations"] = client.operations
        return result
    changes = plan_pool(params, actual)
    before, after = diff_view(changes)
    result = {"changed": bool(changes), "changes": public_changes(changes), "node_pool": pool_facts(actual),
              "diff": {"before": before, "after": after}}
    recreate = [c for c in changes if c["action"] == "recreate"]
    if recreate and not params["recreate"]:
        raise GcpError(refuse_recreate("node pool", name, recreate))
    if not changes or check_mode:
        return result
    if recreate:
        client.delete_node_pool(project, location, cluster, name)
        client.create_node_pool(project, location, cluster, desired)
    else:
        for item in changes:
            verb, suffix, body, what = item["action"]
            client.node_pool_call(project, location, cluster, name, verb, suffix, body, what)
    result["node_pool"] = pool_facts(client.get_node_pool(project, location, cluster, name))
    result["operations"] = client.operations
    return result
