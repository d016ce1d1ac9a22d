"""The live preflight checks against the Compute + Service Usage simulator (and IAM's Cloud Storage, GKE).

Each check asks only GETs; every test ends with zero write calls at every server.
"""

from __future__ import annotations

import pytest
import requests

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpSession
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.live import LiveChecks, required_services
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import roles_for
from local_stack.simulators.compute import ComputeSimulator
from local_stack.simulators.gke import GkeSimulator
from local_stack.simulators.iam import IamSimulator

PROJECT = "live-project"
GKE_SERVICES = ["compute.googleapis.com", "container.googleapis.com", "storage.googleapis.com",
                "artifactregistry.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com",
                "monitoring.googleapis.com"]
SETTINGS = {
    "gcp_project": PROJECT, "gke_cluster_name": "triton-fil", "gke_cluster_location": "us-central1-a",
    "gke_cluster_node_locations": [], "gke_cluster_gpu_pool_name": "gpu-pool",
    "gke_cluster_gpu_accelerator_type": "nvidia-tesla-t4", "gke_cluster_gpu_accelerator_count": 1,
    "gke_cluster_gpu_min_nodes": 2, "gke_cluster_gpu_initial_node_count": 2, "gke_cluster_gpu_spot": False,
    "gcs_models_bucket": "live-project-models", "gcr_image_registry": "us-central1-docker.pkg.dev",
}


@pytest.fixture
def servers():
    compute, iam, gke = ComputeSimulator().serve(), IamSimulator().serve(), GkeSimulator().serve()
    compute.project(PROJECT, GKE_SERVICES)
    for zone in ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"):
        compute.add_zone(zone)
    for zone in ("us-central1-a", "us-central1-b", "us-central1-c"):
        compute.offer(zone, "nvidia-tesla-t4", max_cards=4)
    compute.quota(PROJECT, "us-central1", "NVIDIA_T4_GPUS", 8, 0)
    try:
        yield compute, iam, gke
    finally:
        writes = compute.write_calls() + iam.write_calls() + gke.write_calls()
        compute.close()
        iam.close()
        gke.close()
    assert writes == [], f"the live checks wrote: {writes}"


def live(servers, **changes):
    compute, iam, gke = servers
    session = GcpSession({"auth_kind": "accesstoken", "access_token": "ya29.live", "max_retries": 2},
                         sleep=lambda _s: None)
    checks = LiveChecks(session, {**SETTINGS, **changes}, roles_for("gke"), "gke",
                        compute_endpoint=compute.urls["compute"], serviceusage_endpoint=compute.urls["serviceusage"],
                        storage_endpoint=iam.urls["storage"], container_endpoint=gke.url)
    problems, warnings, report = checks.run()
    return [f"{v}: {m}" for v, m, _r in problems], warnings, report


def test_a_deployment_that_fits_passes(servers):
    problems, warnings, report = live(servers)
    assert problems == [] and warnings == []
    assert report["quota"] == {"metric": "NVIDIA_T4_GPUS", "limit": 8.0, "usage": 0.0, "needed": 2}
    assert report["accelerator_zones"] == {"offered": ["us-central1-a"], "missing": []}
    assert report["bucket"].startswith("absent")
    compute = servers[0]
    methods = [c[3] for c in compute.calls()]
    assert methods == ["serviceusage.services.list", "compute.regions.get", "compute.acceleratorTypes.list"]


def test_gpu_type_missing_in_a_node_zone(servers):
    (problem,), _w, _r = live(servers, gke_cluster_node_locations=["us-central1-a", "us-central1-f"])
    assert problem.startswith("gke_cluster_node_locations: nvidia-tesla-t4 is not offered in us-central1-f "
                              "(offered in us-central1-a)")


def test_regional_default_zones_must_all_offer_the_gpu(servers):
    (problem,), _w, _r = live(servers, gke_cluster_location="us-central1")
    assert problem.startswith("gke_cluster_node_locations: is empty, so GKE spreads the GPU pool over 3 zones of "
                              "us-central1, but nvidia-tesla-t4 is not offered in us-central1-f")
    assert "us-central1-a, us-central1-b, us-central1-c" in problem


def test_unknown_zone(servers):
    (problem,), _w, _r = live(servers, gke_cluster_location="us-central1-z")
    assert problem.startswith("gke_cluster_location: zone 'us-central1-z' does not exist in Compute Engine")


def test_count_above_maximum_cards(servers):
    servers[0].quota(PROJECT, "us-central1", "NVIDIA_T4_GPUS", 64, 0)
    (problem,), _w, _r = live(servers, gke_cluster_gpu_accelerator_count=8)
    assert problem.startswith("gke_cluster_gpu_accelerator_count: 8 x nvidia-tesla-t4 exceeds its "
                              "maximumCardsPerInstance (4)")


def test_quota_below_the_first_nodes(servers):
    servers[0].quota(PROJECT, "us-central1", "NVIDIA_T4_GPUS", 1, 0)
    (problem,), _w, _r = live(servers)
    assert problem.startswith("gke_cluster_gpu_min_nodes: the pool's first nodes need 2 node(s) x 1 zone(s) x 1 GPU(s) "
                              "= 2 NVIDIA_T4_GPUS, but the quota in us-central1 is 1")


def test_quota_in_use_counts_unless_the_pool_exists(servers):
    compute, _iam, gke = servers
    compute.quota(PROJECT, "us-central1", "NVIDIA_T4_GPUS", 2, 1)
    (problem,), _w, _r = live(servers)
    assert "only 1 of 2 are free in us-central1 (1 in use)" in problem
    # The pool exists already: its own nodes are the usage, a re-run needs nothing more.
    gke.clusters[(PROJECT, "us-central1-a", "triton-fil")] = {"name": "triton-fil", "nodePools": [{"name": "gpu-pool"}]}
    assert live(servers)[0] == []


def test_disabled_apis_are_one_problem_and_skip_their_checks(servers):
    compute = servers[0]
    compute.disable(PROJECT, "compute.googleapis.com", "monitoring.googleapis.com")
    (problem,), _w, report = live(servers)
    assert problem == ("gcp_project: 'live-project' does not have these APIs enabled, which the run calls: "
                       "compute.googleapis.com, monitoring.googleapis.com — enable them (gcloud services enable "
                       "compute.googleapis.com monitoring.googleapis.com --project live-project)")
    assert "quota" not in report and not compute.calls("acceleratorTypes.list")


def test_services_list_is_paged(servers):
    compute = servers[0]
    compute.enable(PROJECT, *[f"extra{i:03d}.googleapis.com" for i in range(250)])
    problems, _w, report = live(servers)
    assert problems == [] and all(report["services"].values())
    assert len(compute.calls("services.list")) == 2


def test_a_question_the_identity_may_not_ask_is_a_warning(servers):
    compute = servers[0]
    compute.deny_listing(PROJECT)
    compute.inject("status", 403, match="regions.get", reason="forbidden",
                   message="Required 'compute.regions.get' permission for 'projects/live-project/regions/us-central1'")
    problems, warnings, _r = live(servers)
    assert problems == []
    assert any("grant roles/serviceusage.serviceUsageViewer" in w for w in warnings)
    assert any("grant roles/compute.viewer" in w for w in warnings)


def test_a_bucket_of_someone_else(servers):
    _compute, iam, _gke = servers
    iam.add_foreign_bucket("live-project-models")
    (problem,), _w, _r = live(servers)
    assert problem.startswith("gcs_models_bucket: 'live-project-models' exists and this identity may not read it (403")
    assert "pick another name" in problem
    iam.foreign_buckets.clear()
    iam.add_bucket("live-project-models", PROJECT)
    problems, _w, report = live(servers)
    assert problems == [] and report["bucket"] == "exists"


def test_transient_errors_are_retried(servers):
    servers[0].inject("status", 503, count=1, match="acceleratorTypes")
    assert live(servers)[0] == []


def test_required_services_follow_the_roles():
    assert required_services(roles_for("local"), {"gcr_image_registry": "127.0.0.1:5000"}) == ["storage.googleapis.com"]
    assert ("artifactregistry.googleapis.com" in required_services(roles_for("gke"), {"gcr_image_registry": "gcr.io"}))
    kube = required_services(roles_for("kubernetes"), {})
    assert "container.googleapis.com" not in kube and "monitoring.googleapis.com" not in kube
    adapter = required_services(roles_for("kubernetes", {"triton_fil_metrics_adapter_enabled": True}), {})
    assert "monitoring.googleapis.com" in adapter, "the metrics adapter reads Cloud Monitoring"


def test_simulator_refuses_unknown_parameters_and_writes():
    sim = ComputeSimulator().serve()
    try:
        sim.project(PROJECT, ["compute.googleapis.com"])
        headers = {"Authorization": "Bearer t"}
        bad = requests.get(f"{sim.urls['compute']}/compute/v1/projects/{PROJECT}/regions/us-east1",
                           params={"zone": "x"}, headers=headers, timeout=5)
        assert bad.status_code == 400 and 'Unknown name "zone"' in bad.json()["error"]["message"]
        post = requests.post(f"{sim.urls['serviceusage']}/v1/projects/{PROJECT}/services/x.googleapis.com:enable",
                             headers=headers, timeout=5)
        assert post.status_code == 501 and len(sim.write_calls()) == 1
        anonymous = requests.get(f"{sim.urls['serviceusage']}/v1/projects/{PROJECT}/services", timeout=5)
        assert anonymous.status_code == 401
    finally:
        sim.close()


def test_an_unreachable_endpoint_is_a_warning_not_a_crash(servers):
    compute, iam, gke = servers
    session = GcpSession({"auth_kind": "accesstoken", "access_token": "ya29.live", "max_retries": 1},
                         sleep=lambda _s: None)
    checks = LiveChecks(session, dict(SETTINGS), roles_for("gke"), "gke", compute_endpoint="http://127.0.0.1:9",
                        serviceusage_endpoint="http://127.0.0.1:9", storage_endpoint=iam.urls["storage"],
                        container_endpoint=gke.url)
    problems, warnings, _report = checks.run()
    assert problems == [] and len(warnings) == 1 and warnings[0].startswith("live checks skipped: ")
    assert compute.calls() == []
