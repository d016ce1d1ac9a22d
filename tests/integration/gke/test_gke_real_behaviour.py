"""gke_cluster and gke_node_pool against the simulator answering the way GKE does.

Each test pins behaviours listed in local_stack/simulators/README.md: every one of them made a run of the
modules fail, or report changed forever, before the modules learnt it.
"""

from __future__ import annotations

import pytest
import requests

from local_stack.simulators.gke import GkeSimulator

TOKEN = "ya29.FAKE-gke-token-must-never-print-7f3a"
COMMON = """
        project: test-project
        location: "{{ location | default('us-central1-a') }}"
        auth_kind: accesstoken
        access_token: "{{ token }}"
        api_endpoint: "{{ endpoint }}"
        wait_timeout: 60
        poll_interval: 0.2
"""
CLUSTER = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: cluster
      rapids.triton_fil.gke_cluster:
        name: "{{ cluster | default('triton-fil') }}"
        state: "{{ state | default('present') }}"
        machine_type: e2-standard-4
        oauth_scopes: "{{ scopes | default(['cloud-platform']) }}"
        network: "{{ network | default(omit) }}"
        subnetwork: "{{ subnetwork | default(omit) }}"
        node_locations: "{{ node_locations | default(omit) }}"
        workload_identity: "{{ wi | default(true) }}"
        labels: "{{ labels | default(omit) }}"
        master_authorized_networks: "{{ authorized | default(omit) }}"
        addons: "{{ addons | default(omit) }}"
        private_nodes: "{{ private | default(false) }}"
""" + COMMON
POOL = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: pool
      rapids.triton_fil.gke_node_pool:
        cluster: "{{ cluster | default('triton-fil') }}"
        name: "{{ pool | default('gpu') }}"
        state: "{{ state | default('present') }}"
        machine_type: "{{ machine | default('n1-standard-4') }}"
        accelerator_type: "{{ accelerator | default('nvidia-tesla-t4') }}"
        accelerator_count: "{{ count | default(omit) }}"
        image_type: "{{ image | default(omit) }}"
        oauth_scopes: "{{ scopes | default(['cloud-platform']) }}"
        spot: "{{ spot | default(false) }}"
        gpu_sharing_strategy: "{{ sharing | default(omit) }}"
        max_shared_clients_per_gpu: "{{ clients | default(omit) }}"
        image_streaming: "{{ streaming | default(omit) }}"
        disk_type: "{{ disk_type | default(omit) }}"
        service_account: "{{ sa | default(omit) }}"
        initial_node_count: 0
        min_node_count: "{{ min_nodes | default(0) }}"
        max_node_count: 3
        node_locations: "{{ pool_locations | default(omit) }}"
        labels: "{{ node_labels | default(omit) }}"
        taints: "{{ taints | default(omit) }}"
        workload_metadata: "{{ metadata | default(omit) }}"
        auto_upgrade: "{{ auto_upgrade | default(true) }}"
        recreate: "{{ recreate | default(false) }}"
""" + COMMON


def ev(gke, **extra):
    return {"endpoint": gke.url, "token": TOKEN, **extra}


def writes(gke):
    return [c[2].replace("container.projects.locations.", "") for c in gke.write_calls()]


EVERY_CLUSTER_OPTION = dict(
    network="projects/test-project/global/networks/vpc-1",
    subnetwork="https://www.googleapis.com/compute/v1/projects/test-project/regions/us-central1/subnetworks/sub-1",
    node_locations=["us-central1-b"], labels={"app": "triton-fil"}, private=True,
    authorized=[{"cidr_block": "203.0.113.0/24", "display_name": "office"}],
    addons={"horizontal_pod_autoscaling": True, "http_load_balancing": False, "gcs_fuse_csi_driver": True},
    scopes=["cloud-platform", "userinfo-email"])
EVERY_POOL_OPTION = dict(
    machine="g2-standard-8", accelerator="nvidia-l4", image="cos_containerd", spot=True, sharing="TIME_SHARING",
    clients=2, streaming=True, disk_type="pd-ssd", sa="nodes@test-project.iam.gserviceaccount.com",
    min_nodes=0, pool_locations=["us-central1-a", "us-central1-b"], node_labels={"workload": "triton"},
    taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}], auto_upgrade=False)


def test_every_option_converges_and_the_second_run_writes_nothing(ansible, gke):
    """Zero values GKE drops, self-links it answers with names, aliases it answers with URLs, the
    primary zone it needs in node locations: none of them is drift."""
    first = ansible(CLUSTER, extra_vars=ev(gke, **EVERY_CLUSTER_OPTION))
    assert first.rc == 0, first.stdout[-3000:]
    cluster = first.result("cluster")["cluster"]
    assert cluster["status"] == "RUNNING", "the module waits until GKE's own operations after the create are over"
    assert cluster["node_locations"] == ["us-central1-a", "us-central1-b"], "the primary zone is added"
    pool = ansible(POOL, extra_vars=ev(gke, **EVERY_POOL_OPTION))
    assert pool.rc == 0, pool.stdout[-3000:]
    facts = pool.result("pool")["node_pool"]
    assert (facts["accelerator_type"], facts["accelerator_count"]) == ("nvidia-l4", 1), "g2-standard-8: one L4"
    assert facts["gpu_sharing_strategy"] == "TIME_SHARING" and facts["max_shared_clients_per_gpu"] == 2
    assert facts["image_streaming"] and facts["spot"] and facts["image_type"] == "COS_CONTAINERD"
    assert facts["autoscaling"] == {"enabled": True, "maxNodeCount": 3}, "GKE drops minNodeCount 0"

    gke.reset_log()
    again = ansible(CLUSTER, extra_vars=ev(gke, **EVERY_CLUSTER_OPTION))
    assert again.rc == 0 and again.changed == 0, again.result("cluster").get("changes")
    pool_again = ansible(POOL, extra_vars=ev(gke, **EVERY_POOL_OPTION))
    assert pool_again.rc == 0 and pool_again.changed == 0, pool_again.stdout[-3000:]
    assert gke.write_calls() == [], "a converged cluster and pool need 0 write calls"


def create_directly(sim, name="triton-fil", **spec):
    """A cluster made by someone else (the console, another run): straight at the simulator."""
    body = {"cluster": {"name": name, "initialNodeCount": 1,
                        "workloadIdentityConfig": {"workloadPool": "test-project.svc.id.goog"}, **spec}}
    answer = requests.post(f"{sim.url}/v1/projects/test-project/locations/us-central1-a/clusters", json=body,
                           headers={"Authorization": "Bearer x"}, timeout=5)
    assert answer.status_code == 200, answer.text


def test_gke_is_busy_after_a_create_and_the_modules_wait(ansible):
    """A new cluster reconciles for a while after its create operation (GKE's own operations); a
    pool created meanwhile is refused with "Cluster is currently being created, ..." - no word
    "operation" in it - and gke_cluster reports the cluster only once it is RUNNING."""
    sim = GkeSimulator(op_seconds={"default": 0.3, "GKE_RECONCILE": 3.0}).serve()
    try:
        first = ansible(CLUSTER, extra_vars=ev(sim))
        assert first.rc == 0 and first.result("cluster")["cluster"]["status"] == "RUNNING", first.stdout[-3000:]

        create_directly(sim, "other")
        pool = ansible(POOL, extra_vars=ev(sim, cluster="other"))
        assert pool.rc == 0, pool.stdout[-3000:]
        refused = [r for r in sim.requests if r[2] and r[2].endswith("nodePools.create") and r[3] == 400]
        assert refused, "the pool's create met the busy cluster and was sent again"
        assert pool.result("pool")["node_pool"]["status"] == "RUNNING"
    finally:
        sim.close()


def test_answers_lost_after_the_write_are_recognised(ansible, gke):
    """The write happened, the answer was lost, the session sent it again: 409 for a create, a
    fingerprint mismatch for labels, 404 for a delete mean success here, not failure."""
    gke.inject("lose_response", match="clusters.create")
    created = ansible(CLUSTER, extra_vars=ev(gke, labels={"app": "a"}))
    assert created.rc == 0 and created.changed == 1, created.stdout[-3000:]
    assert [r[3] for r in gke.calls("clusters.create")] == [None, 409]

    gke.inject("lose_response", match="setResourceLabels")
    relabelled = ansible(CLUSTER, extra_vars=ev(gke, labels={"app": "b"}))
    assert relabelled.rc == 0 and relabelled.changed == 1, relabelled.stdout[-3000:]
    assert gke.clusters[("test-project", "us-central1-a", "triton-fil")]["resourceLabels"] == {"app": "b"}

    gke.inject("lose_response", match="nodePools.create")
    pool = ansible(POOL, extra_vars=ev(gke))
    assert pool.rc == 0 and pool.result("pool")["node_pool"]["status"] == "RUNNING", pool.stdout[-3000:]
    gke.inject("lose_response", match="nodePools.delete")
    assert ansible(POOL, extra_vars=ev(gke, state="absent")).rc == 0
    gke.inject("lose_response", match="clusters.delete")
    gone = ansible(CLUSTER, extra_vars=ev(gke, state="absent"))
    assert gone.rc == 0 and gone.changed == 1, gone.stdout[-3000:]
    gke.settle()
    assert gke.clusters == {}


def test_node_locations_add_then_remove_in_two_requests(ansible, gke):
    assert ansible(CLUSTER, extra_vars=ev(gke, node_locations=["us-central1-a", "us-central1-b"])).rc == 0
    gke.reset_log()
    moved = ansible(CLUSTER, extra_vars=ev(gke, node_locations=["us-central1-c"]), diff=True)
    assert moved.rc == 0 and moved.changed == 1, moved.stdout[-3000:]
    sent = gke.calls("clusters.update")
    assert len(sent) == 2 and all(r[3] == 200 for r in sent)
    assert moved.result("cluster")["cluster"]["node_locations"] == ["us-central1-a", "us-central1-c"]
    assert ansible(CLUSTER, extra_vars=ev(gke, node_locations=["us-central1-c"])).changed == 0


def test_workload_metadata_follows_workload_identity(ansible, gke):
    assert ansible(CLUSTER, extra_vars=ev(gke, wi=False)).rc == 0
    pool = ansible(POOL, extra_vars=ev(gke))
    assert pool.rc == 0, pool.stdout[-3000:]
    gke.reset_log()
    assert ansible(POOL, extra_vars=ev(gke)).changed == 0 and gke.write_calls() == []
    refused = ansible(POOL, extra_vars=ev(gke, metadata="GKE_METADATA"))
    assert refused.rc != 0 and gke.write_calls() == []
    assert "workload_metadata GKE_METADATA needs Workload Identity on the cluster" in refused.result("pool")["msg"]


def test_image_type_and_image_streaming_change_in_place_sharing_is_refused(ansible, gke):
    create_directly(gke)
    gke.settle()
    assert ansible(POOL, extra_vars=ev(gke, image="COS_CONTAINERD", streaming=False)).rc == 0
    gke.reset_log()
    streamed = ansible(POOL, extra_vars=ev(gke, image="COS_CONTAINERD", streaming=True))
    assert streamed.rc == 0 and streamed.changed == 1 and writes(gke) == ["clusters.nodePools.update"]
    gke.reset_log()
    refused = ansible(POOL, extra_vars=ev(gke, image="ubuntu_containerd"))
    assert refused.rc != 0 and writes(gke) == [], "image streaming needs COS: refused before any write"
    assert "set image_streaming false to move it to UBUNTU_CONTAINERD" in refused.result("pool")["msg"]
    moved = ansible(POOL, extra_vars=ev(gke, image="ubuntu_containerd", streaming=False))
    assert moved.rc == 0 and moved.changed == 1, moved.stdout[-3000:]
    assert writes(gke) == ["clusters.nodePools.update", "clusters.update"], (
        "streaming off first, then the image: clusters.update with desiredNodePoolId")
    assert moved.result("pool")["node_pool"]["image_type"] == "UBUNTU_CONTAINERD"
    gke.reset_log()
    shared = ansible(POOL, extra_vars=ev(gke, sharing="TIME_SHARING", clients=4))
    assert shared.rc != 0 and writes(gke) == []
    assert "must be recreated to change gpu_sharing" in shared.result("pool")["msg"]


@pytest.mark.parametrize("extra,words", [
    ({"accelerator": "nvidia-l4"}, "accelerator_type nvidia-l4 runs only on G2 machine types"),
    ({"machine": "g2-standard-24", "accelerator": "nvidia-l4", "count": 1}, "accelerator_count (1) must be 2"),
    ({"machine": "g2-standard-4"}, "machine_type g2-standard-4 comes with NVIDIA L4 GPUs"),
    ({"sharing": "TIME_SHARING"}, "needs max_shared_clients_per_gpu >= 2"),
    ({"image": "UBUNTU_CONTAINERD", "streaming": True}, "image_streaming needs image_type COS_CONTAINERD"),
])
def test_gpu_options_are_checked_before_any_write(ansible, gke, extra, words):
    create_directly(gke)
    gke.settle()
    gke.reset_log()
    run = ansible(POOL, extra_vars=ev(gke, **extra))
    assert run.rc != 0 and words in run.result("pool")["msg"], run.result("pool")["msg"]
    assert gke.write_calls() == []
