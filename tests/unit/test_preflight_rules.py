"""One test per preflight rule: a bad value yields a message naming the variable and the fix."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.rules import check

GOOD = {
    "triton_fil_target": "gke", "gcp_project": "my-project-123", "gcp_region": "us-central1",
    "gcp_zone": "us-central1-a", "gcp_auth_kind": "application", "gcs_models_bucket": "my-project-models",
    "gcs_models_prefix": "triton/model_repository", "gke_cluster_gpu_min_nodes": 2, "gke_cluster_gpu_max_nodes": 3,
    "gke_cluster_gpu_accelerator_type": "nvidia-tesla-t4", "gke_cluster_gpu_accelerator_count": 1,
    "gcr_image_source": "nvcr.io/nvidia/tritonserver:24.10-py3",
    "triton_helm_min_replicas": 1, "triton_helm_max_replicas": 3, "verify_load_concurrency": 4,
}


def test_good_settings_pass():
    assert check(GOOD) == []


@pytest.mark.parametrize("change,expected", [
    ({"gcp_project": "My Project"}, "gcp_project: 'My Project' is not a project ID"),
    ({"gcp_zone": "us-central1"}, "gcp_zone: 'us-central1' is not a zone — use a name like 'us-central1-a'"),
    ({"gcp_zone": "europe-west4-a"}, "gcp_zone: 'europe-west4-a' is not in gcp_region 'us-central1'"),
    ({"gcp_region": "uscentral"}, "gcp_region: 'uscentral' is not a region"),
    ({"gke_cluster_location": "us-central"}, "gke_cluster_location: 'us-central' is neither a zone"),
    ({"gke_cluster_location": "us-central1", "gke_cluster_node_locations": ["europe-west4-a"]},
     "gke_cluster_node_locations: 'europe-west4-a' is outside the cluster's region 'us-central1'"),
    ({"gke_cluster_location": "us-central1-a", "gke_cluster_node_locations": ["us-central1-b", "us-central1"]},
     "gke_cluster_node_locations: 'us-central1' is not a zone"),
    ({"gcs_models_bucket": "gs://models"}, "gcs_models_bucket: 'gs://models' must be a bare bucket name"),
    ({"gcs_models_prefix": "gs://b/p"}, "gcs_models_prefix: 'gs://b/p' must be an object prefix"),
    ({"gke_cluster_gpu_min_nodes": 4}, "gke_cluster_gpu_min_nodes: (4) is greater than gke_cluster_gpu_max_nodes (3)"),
    ({"triton_helm_max_replicas": 0, "triton_helm_min_replicas": 0}, "triton_helm_max_replicas: is 0"),
    ({"gke_cluster_gpu_min_nodes": "two"}, "gke_cluster_gpu_min_nodes: 'two' must be a whole number >= 0"),
    ({"gke_cluster_gpu_accelerator_type": "nvidia-t4"}, "gke_cluster_gpu_accelerator_type: 'nvidia-t4' is not a known GKE GPU type"),
    ({"gke_cluster_gpu_accelerator_count": 0}, "gke_cluster_gpu_accelerator_count: 0 must be a whole number >= 1"),
    ({"gcr_image_source": "tritonserver latest"}, "gcr_image_source: 'tritonserver latest' is not an image reference"),
    ({"gcp_auth_kind": "serviceaccount"}, "gcp_service_account_file: is required with gcp_auth_kind=serviceaccount"),
    ({"gcp_auth_kind": "accesstoken"}, "gcp_access_token: is required with gcp_auth_kind=accesstoken"),
    ({"gcp_auth_kind": "anonymous"}, "gcp_auth_kind: 'anonymous' only works with emulators"),
    ({"verify_load_concurrency": 0}, "verify_load_concurrency: 0 must be a whole number >= 1"),
])
def test_each_rule_names_the_variable_and_the_fix(change, expected):
    problems = check({**GOOD, **change})
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_are_listed_at_once():
    problems = check({**GOOD, "gcp_zone": "bad", "gcs_models_bucket": "UPPER", "gke_cluster_gpu_min_nodes": 9})
    assert len(problems) == 3


def test_local_target_accepts_emulator_settings():
    assert check({"triton_fil_target": "local", "gcp_project": "local-project", "gcp_auth_kind": "anonymous",
                  "gcs_models_bucket": "triton-fil-local"}) == []
