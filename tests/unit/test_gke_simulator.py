"""The GKE simulator holds the modules to Google's contract: check that it rejects what Google rejects."""

from __future__ import annotations

import time

import pytest
import requests

from local_stack.simulators.gke import GkeSimulator

HEADERS = {"Authorization": "Bearer test"}
CREATE = "/v1/projects/p/locations/us-central1-a/clusters"


@pytest.fixture
def sim():
    simulator = GkeSimulator(op_seconds=0.05).serve()
    yield simulator
    simulator.close()


def post(sim, path, body, headers=None):
    return requests.post(sim.url + path, json=body, headers=HEADERS if headers is None else headers, timeout=5)


@pytest.mark.parametrize("body,expected", [
    ({"cluster": {"name": "c", "addonsConfig": {"istioConfig": {"disabled": False}}}},
     'Unknown name "istioConfig" at \'cluster.addons_config\': Cannot find field.'),
    ({"cluster": {"name": "c", "initialNodeCount": "three"}}, "Invalid value at 'cluster.initial_node_count' (TYPE_INT64)"),
    ({"cluster": {"name": "c", "releaseChannel": {"channel": "FAST"}}}, "(TYPE_ENUM), \"FAST\""),
    ({"cluster": {"name": "c", "workloadIdentityConfig": {"workloadPool": True}}}, "(TYPE_STRING), true"),
    ({"cluster": {"name": "c", "nodePools": {"name": "x"}}}, "Invalid value at 'cluster.node_pools'"),
])
def test_request_bodies_are_validated_against_the_discovery_document(sim, body, expected):
    response = post(sim, CREATE, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and expected in error["message"], error["message"]
    assert sim.schema_rejections and sim.clusters == {}


def test_operations_progress_and_errors_are_google_shaped(sim):
    assert post(sim, CREATE, {"cluster": {"name": "c"}}, headers={}).json()["error"]["status"] == "UNAUTHENTICATED"
    op = post(sim, CREATE, {"cluster": {"name": "c", "initialNodeCount": 1}}).json()
    assert op["status"] == "PENDING" and op["operationType"] == "CREATE_CLUSTER"
    again = post(sim, CREATE, {"cluster": {"name": "c"}})
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
    busy = requests.put(sim.url + CREATE + "/c", json={"update": {"desiredReleaseChannel": {"channel": "STABLE"}}},
                        headers=HEADERS, timeout=5)
    assert busy.status_code == 400 and busy.json()["error"]["status"] == "FAILED_PRECONDITION"
    time.sleep(0.1)
    done = requests.get(f"{sim.url}/v1/projects/p/locations/us-central1-a/operations/{op['name']}",
                        headers=HEADERS, timeout=5).json()
    assert done["status"] == "DONE" and "error" not in done
    sim.settle()
    cluster = requests.get(sim.url + CREATE + "/c", headers=HEADERS, timeout=5).json()
    assert cluster["status"] == "RUNNING" and cluster["nodePools"][0]["name"] == "default-pool"
    update = {"desiredReleaseChannel": {"channel": "STABLE"}, "desiredLocations": ["us-central1-a"]}
    two = requests.put(sim.url + CREATE + "/c", json={"update": update}, headers=HEADERS, timeout=5)
    assert two.status_code == 400 and "Exactly one update" in two.json()["error"]["message"]
    missing = requests.get(sim.url + CREATE + "/nope", headers=HEADERS, timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


# ------------------------------------------------------------------------------------------------
# The simulator answers the way GKE does (local_stack/simulators/README.md names the source of each).

ZONE = "/v1/projects/p/locations/us-central1-a"


def call(sim, verb, path, body=None):
    return requests.request(verb, sim.url + path, json=body, headers=HEADERS, timeout=5)


def created(sim, cluster, path=CREATE):
    op = call(sim, "POST", path, {"cluster": cluster})
    assert op.status_code == 200, op.text
    sim.settle()
    return call(sim, "GET", f"{path}/{cluster['name']}").json()


def test_responses_are_proto3_json_with_gke_defaults_and_normal_forms(sim):
    cluster = created(sim, {"name": "c", "network": "projects/p/global/networks/vpc-1",
                            "subnetwork": "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/subnetworks/sub",
                            "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"},
                            "nodePools": [{"name": "gpu", "initialNodeCount": 0, "autoscaling": {
                                "enabled": True, "minNodeCount": 0, "maxNodeCount": 3}, "management": {
                                "autoRepair": True, "autoUpgrade": False}, "config": {
                                "machineType": "n1-standard-4", "imageType": "cos_containerd", "spot": False,
                                "oauthScopes": ["cloud-platform"], "accelerators": [
                                    {"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": 1}]}}]})
    pool = cluster["nodePools"][0]
    assert pool["autoscaling"] == {"enabled": True, "maxNodeCount": 3}, "proto3 JSON drops minNodeCount 0"
    assert pool["management"] == {"autoRepair": True} and "initialNodeCount" not in pool
    assert "spot" not in pool["config"]
    assert pool["config"]["imageType"] == "COS_CONTAINERD"
    assert pool["config"]["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert pool["config"]["accelerators"][0]["acceleratorCount"] == "1", "int64 is a JSON string"
    assert pool["config"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}, "a WI cluster's default"
    assert (cluster["network"], cluster["subnetwork"]) == ("vpc-1", "sub")
    assert cluster["networkConfig"] == {"network": "projects/p/global/networks/vpc-1",
                                        "subnetwork": "projects/p/regions/us-central1/subnetworks/sub"}
    assert cluster["addonsConfig"]["horizontalPodAutoscaling"] == {}, "an empty message keeps its presence"
    assert len(cluster["labelFingerprint"]) == 8


def test_a_new_cluster_reconciles_and_refuses_writes_with_gkes_words(sim):
    sim.op_seconds = {"default": 0.05, "GKE_RECONCILE": 0.4}
    op = call(sim, "POST", CREATE, {"cluster": {"name": "c", "initialNodeCount": 1}}).json()
    busy = call(sim, "PUT", CREATE + "/c", {"update": {"desiredReleaseChannel": {"channel": "STABLE"}}}).json()["error"]
    assert busy["message"] == f"Cluster is running incompatible operation {op['name']}."
    assert busy["status"] == "FAILED_PRECONDITION" and busy["errors"][0]["reason"] == "failedPrecondition"
    time.sleep(0.1)
    assert call(sim, "GET", CREATE + "/c").json()["status"] == "RECONCILING"
    own = call(sim, "POST", CREATE + "/c/nodePools", {"nodePool": {"name": "p2"}}).json()["error"]
    assert own["message"] == ("Cluster is currently being created, deleted, updated or repaired and cannot be "
                              "updated.")
    sim.settle()
    assert call(sim, "GET", CREATE + "/c").json()["status"] == "RUNNING"


def test_a_failed_operation_carries_only_status_message(sim):
    sim.inject("op_error", match="CREATE_CLUSTER", message="Insufficient quota")
    op = call(sim, "POST", CREATE, {"cluster": {"name": "c"}}).json()
    time.sleep(0.1)
    done = call(sim, "GET", f"{ZONE}/operations/{op['name']}").json()
    assert done["status"] == "DONE" and done["statusMessage"] == "Insufficient quota" and "error" not in done
    assert call(sim, "GET", CREATE + "/c").json()["status"] == "ERROR"


def test_locations_keep_the_primary_zone_and_change_one_way_per_request(sim):
    created(sim, {"name": "c", "locations": ["us-central1-a", "us-central1-b"]})
    without = call(sim, "PUT", CREATE + "/c", {"update": {"desiredLocations": ["us-central1-b"]}})
    assert without.status_code == 400 and "must contain the cluster's zone us-central1-a" in without.json()["error"]["message"]
    both = call(sim, "PUT", CREATE + "/c", {"update": {"desiredLocations": ["us-central1-a", "us-central1-c"]}})
    assert both.status_code == 400 and "cannot be added and removed in the same request" in both.json()["error"]["message"]
    zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
    add = call(sim, "PUT", CREATE + "/c", {"update": {"desiredLocations": zones}})
    assert add.status_code == 200


def test_pool_level_cluster_updates_name_the_pool_and_gke_metadata_needs_workload_identity(sim):
    created(sim, {"name": "c", "initialNodeCount": 1})
    update = {"desiredNodePoolId": "default-pool", "desiredImageType": "ubuntu_containerd"}
    image = call(sim, "PUT", CREATE + "/c", {"update": update})
    assert image.status_code == 200, "desiredNodePoolId travels with desiredImageType: one update"
    sim.settle()
    assert call(sim, "GET", CREATE + "/c/nodePools/default-pool").json()["config"]["imageType"] == "UBUNTU_CONTAINERD"
    refused = call(sim, "POST", CREATE + "/c/nodePools", {"nodePool": {"name": "p", "config": {
        "workloadMetadataConfig": {"mode": "GKE_METADATA"}}}})
    assert refused.status_code == 400 and "requires Workload Identity" in refused.json()["error"]["message"]
    update = call(sim, "PUT", CREATE + "/c/nodePools/default-pool", {"workloadMetadataConfig": {"mode": "GKE_METADATA"}})
    assert update.status_code == 400
    pool = call(sim, "GET", CREATE + "/c/nodePools/default-pool").json()
    assert "workloadMetadataConfig" not in pool["config"], "no WI: GKE's default mode, not reported"


def test_gpu_machine_families_and_image_streaming_rules(sim):
    created(sim, {"name": "c", "initialNodeCount": 1})
    g2 = call(sim, "POST", CREATE + "/c/nodePools", {"nodePool": {"name": "l4", "config": {
        "machineType": "g2-standard-24", "gcfsConfig": {"enabled": True}}}})
    assert g2.status_code == 200
    sim.settle()
    accel = call(sim, "GET", CREATE + "/c/nodePools/l4").json()["config"]["accelerators"]
    assert accel == [{"acceleratorType": "nvidia-l4", "acceleratorCount": "2"}], "G2 comes with its L4 GPUs"
    for config, words in [
        ({"machineType": "n1-standard-4", "accelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": 1}]},
         "only available on G2"),
        ({"machineType": "g2-standard-4", "accelerators": [{"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": 1}]},
         "comes with 1 nvidia-l4"),
        ({"imageType": "UBUNTU_CONTAINERD", "gcfsConfig": {"enabled": True}}, "requires the COS_CONTAINERD image"),
    ]:
        answer = call(sim, "POST", CREATE + "/c/nodePools", {"nodePool": {"name": "x", "config": config}})
        assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.text


def test_a_lost_response_means_the_write_happened(sim):
    sim.inject("lose_response", match="clusters.create")
    with pytest.raises(requests.ConnectionError):
        call(sim, "POST", CREATE, {"cluster": {"name": "c"}})
    assert ("p", "us-central1-a", "c") in sim.clusters
    again = call(sim, "POST", CREATE, {"cluster": {"name": "c"}})
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"


def test_label_fingerprint_mismatch_answers_in_gkes_words(sim):
    cluster = created(sim, {"name": "c", "resourceLabels": {"a": "1"}})
    stale = call(sim, "POST", CREATE + "/c:setResourceLabels", {"resourceLabels": {"a": "2"}, "labelFingerprint": ""})
    error = stale.json()["error"]
    assert stale.status_code == 400 and error["errors"][0]["reason"] == "failedPrecondition"
    assert error["message"] == ("Labels could not be set due to fingerprint mismatch; try again with the proper "
                                f"fingerprint: incorrect fingerprint supplied was \"\", the expected one is "
                                f"\"{cluster['labelFingerprint']}\".")


class RecordingControlPlane:
    """What the lead's local kube-apiserver receives from the simulator."""

    endpoint = "127.0.0.1:6443"
    ca_certificate = "TE9DQUwtQ0E="

    def __init__(self):
        self.calls = []

    def sync_node_pool(self, cluster_name, pool):
        self.calls.append(("sync_node_pool", cluster_name, pool["name"], pool.get("autoscaling")))

    def delete_node_pool(self, cluster_name, pool_name):
        self.calls.append(("delete_node_pool", cluster_name, pool_name))

    def delete_cluster(self, cluster_name):
        self.calls.append(("delete_cluster", cluster_name))

    def enable_managed_prometheus(self):
        self.calls.append(("enable_managed_prometheus",))


def test_control_plane_interface():
    plane = RecordingControlPlane()
    sim = GkeSimulator(op_seconds=0.05, control_plane=plane).serve()
    try:
        cluster = created(sim, {"name": "c", "initialNodeCount": 1})
        assert cluster["endpoint"] == "127.0.0.1:6443"
        assert cluster["masterAuth"]["clusterCaCertificate"] == "TE9DQUwtQ0E="
        assert call(sim, "POST", CREATE + "/c/nodePools", {"nodePool": {"name": "gpu"}}).status_code == 200
        sim.settle()
        auto = {"autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 2}}
        assert call(sim, "POST", CREATE + "/c/nodePools/gpu:setAutoscaling", auto).status_code == 200
        sim.settle()
        assert call(sim, "POST", CREATE + "/c/nodePools/gpu:setSize", {"nodeCount": 2}).status_code == 200
        sim.settle()
        assert call(sim, "PUT", CREATE + "/c/nodePools/gpu", {"labels": {"labels": {"a": "b"}}}).status_code == 200
        sim.settle()
        assert call(sim, "DELETE", CREATE + "/c/nodePools/gpu").status_code == 200
        sim.settle()
        assert call(sim, "DELETE", CREATE + "/c").status_code == 200
        sim.settle()
    finally:
        sim.close()
    assert plane.calls == [
        ("enable_managed_prometheus",),
        ("sync_node_pool", "c", "default-pool", None),
        ("sync_node_pool", "c", "gpu", None),
        ("sync_node_pool", "c", "gpu", {"enabled": True, "minNodeCount": 1, "maxNodeCount": 2}),
        ("sync_node_pool", "c", "gpu", {"enabled": True, "minNodeCount": 1, "maxNodeCount": 2}),
        ("sync_node_pool", "c", "gpu", {"enabled": True, "minNodeCount": 1, "maxNodeCount": 2}),
        ("delete_node_pool", "c", "gpu"),
        ("delete_cluster", "c"),
    ]


def test_control_plane_calls_happen_outside_the_lock():
    seen = []

    class Probe(RecordingControlPlane):
        def sync_node_pool(self, cluster_name, pool):
            acquired = sim.lock.acquire(blocking=False)  # an RLock: free only if no thread holds it
            if acquired:
                sim.lock.release()
            seen.append(acquired and not sim.lock._is_owned())  # pylint: disable=protected-access

    sim = GkeSimulator(op_seconds=0.05, control_plane=Probe()).serve()
    try:
        created(sim, {"name": "c", "initialNodeCount": 1})
    finally:
        sim.close()
    assert seen == [True]
