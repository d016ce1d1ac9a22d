"""The GKE planners and client read GKE's answers as GKE writes them (local_stack/simulators/README.md)."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpApiError, GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.client import ContainerClient, is_busy
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.cluster import plan_cluster
from ansible_collections.rapids.triton_fil.plugins.module_utils.gke.node_pool import plan_pool, pool_options

POOL = {key: spec.get("default") for key, spec in pool_options().items()}
POOL.update(name="gpu", accelerator_type="nvidia-tesla-t4", min_node_count=0, max_node_count=3,
            oauth_scopes=["cloud-platform"], image_type="cos_containerd")


def answered_pool(**config):
    """A pool as GKE prints it: no minNodeCount (0), no spot (false), URLs for scopes, upper-case image."""
    base = {"machineType": "n1-standard-4", "diskSizeGb": 100, "diskType": "pd-balanced", "imageType": "COS_CONTAINERD",
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"], "serviceAccount": "default",
            "accelerators": [{"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": "1",
                              "gpuDriverInstallationConfig": {"gpuDriverVersion": "DEFAULT"}}],
            "workloadMetadataConfig": {"mode": "GKE_METADATA"}}
    base.update(config)
    return {"name": "gpu", "config": base, "autoscaling": {"enabled": True, "maxNodeCount": 3},
            "management": {"autoRepair": True, "autoUpgrade": True}, "locations": ["us-central1-a"]}


def test_dropped_zeros_aliases_and_case_are_not_drift():
    assert plan_pool(POOL, answered_pool()) == []


def test_no_autoscaling_answered_means_disabled_and_is_planned():
    pool = answered_pool()
    del pool["autoscaling"]
    (change,) = plan_pool(POOL, pool)
    assert change["field"] == "autoscaling" and change["before"] == {"enabled": False, "minNodeCount": 0,
                                                                     "maxNodeCount": 0}


def test_workload_metadata_follows_the_clusters_workload_identity():
    without = answered_pool()
    del without["config"]["workloadMetadataConfig"]
    assert plan_pool(POOL, without, workload_identity=False) == [], "GKE's default mode there: not compared"
    (change,) = plan_pool(POOL, without, workload_identity=True)
    assert change["field"] == "workload_metadata" and change["after"] == "GKE_METADATA"


CLUSTER = dict(name="c", project="p", location="us-central1-a", node_locations=["us-central1-c"],
               machine_type="e2-standard-4", disk_size_gb=100, oauth_scopes=["cloud-platform"],
               network="projects/p/global/networks/vpc", subnetwork="https://www.googleapis.com/compute/v1/projects/"
               "p/regions/us-central1/subnetworks/sub", private_nodes=False, release_channel="REGULAR",
               workload_identity=False, master_authorized_networks=None, addons={}, labels=None)


def test_cluster_names_and_the_primary_zone_and_a_split_location_change():
    actual = {"network": "vpc", "subnetwork": "sub", "locations": ["us-central1-a", "us-central1-b"],
              "releaseChannel": {"channel": "REGULAR"},
              "nodePools": [{"name": "default-pool", "config": {
                  "machineType": "e2-standard-4", "diskSizeGb": 100,
                  "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"]}}]}
    (change,) = plan_cluster(CLUSTER, actual)
    assert change["field"] == "node_locations" and change["after"] == ["us-central1-a", "us-central1-c"]
    kind, steps = change["action"]
    assert kind == "updates" and steps == [
        {"desiredLocations": ["us-central1-a", "us-central1-b", "us-central1-c"]},
        {"desiredLocations": ["us-central1-a", "us-central1-c"]}], "add first, then remove"


def busy(message, status="FAILED_PRECONDITION"):
    return GcpApiError("PUT", "u", 400, status, message)


def test_every_failed_precondition_is_busy_but_a_stale_label_fingerprint():
    assert is_busy(busy("Cluster is running incompatible operation operation-1."))
    assert is_busy(busy("Cluster is currently being created, deleted, updated or repaired and cannot be updated."))
    assert is_busy(busy("x", status="failedPrecondition"))
    assert not is_busy(busy("Labels could not be set due to fingerprint mismatch; try again with the proper fingerprint"))
    assert not is_busy(busy("bad", status="INVALID_ARGUMENT"))


class ScriptedSession:
    """Answers a scripted list: exceptions are raised, dicts returned; calls are logged like GcpSession's."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def json(self, method, url, **_kwargs):
        answer = self.answers.pop(0)
        if isinstance(answer, tuple):  # (status of a dropped attempt, then the answer of its retry)
            self.calls.append((method, url, None))
            answer = answer[1]
        if isinstance(answer, Exception):
            self.calls.append((method, url, answer.status))
            raise answer
        self.calls.append((method, url, 200))
        return answer


def client(answers):
    return ContainerClient(ScriptedSession(answers), "http://gke", wait_timeout=30, poll_interval=0.01,
                           sleep=lambda _s: None)


def test_a_failed_operation_with_only_a_status_message_fails():
    gke = client([{"name": "op", "status": "DONE", "operationType": "CREATE_NODE_POOL",
                   "statusMessage": "Insufficient quota"}])
    with pytest.raises(GcpError, match=r"\(CREATE_NODE_POOL\) failed: Insufficient quota"):
        gke.call("POST", "projects/p/locations/l/clusters/c/nodePools", {}, "create")


def test_a_retried_create_that_finds_itself_waits_on_the_resource():
    conflict = GcpApiError("POST", "u", 409, "ALREADY_EXISTS", "Already exists")
    gke = client([("dropped", conflict), {"status": "PROVISIONING"}, {"status": "RUNNING", "name": "c"}])
    assert gke.create_cluster("p", "l", {"name": "c"}) == {"status": "RUNNING", "name": "c"}
    fresh = client([conflict])  # no attempt lost: somebody else's cluster, a real conflict
    with pytest.raises(GcpApiError, match="409"):
        fresh.create_cluster("p", "l", {"name": "c"})


def test_a_delete_that_finds_nothing_is_done_and_busy_answers_are_retried():
    gone = GcpApiError("DELETE", "u", 404, "NOT_FOUND", "Not found")
    gke = client([busy(" Cluster is currently being created, deleted, updated or repaired"), gone])
    assert gke.delete_cluster("p", "l", "c") is None
