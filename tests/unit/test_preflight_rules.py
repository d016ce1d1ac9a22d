"""One test per preflight rule: a bad value yields one message naming the variable and the fix."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight import gpus, rules
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.rules import RULES, LIVE_RULES, check, run
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import (
    SHARED_VARIABLES, TARGET_ROLES, roles_for,
)
from local_stack.simulators.discovery import DOCUMENTS
from testlib import REPO

GKE_ROLES = roles_for("gke")
GOOD = {
    "triton_fil_target": "gke", "gcp_project": "my-project-123", "gcp_region": "us-central1",
    "gcp_zone": "us-central1-a", "gcp_auth_kind": "application",
    "gke_cluster_name": "triton-fil", "gke_cluster_location": "us-central1-a", "gke_cluster_node_locations": [],
    "gke_cluster_gpu_pool_name": "gpu-pool", "gke_cluster_gpu_machine_type": "n1-standard-4",
    "gke_cluster_gpu_accelerator_type": "nvidia-tesla-t4", "gke_cluster_gpu_accelerator_count": 1,
    "gke_cluster_gpu_min_nodes": 2, "gke_cluster_gpu_max_nodes": 3, "gke_cluster_gpu_initial_node_count": 2,
    "gke_cluster_gpu_disk_size_gb": 100, "gke_cluster_master_authorized_networks": [{"cidr_block": "10.0.0.0/8"}],
    "gcs_models_bucket": "my-project-models", "gcs_models_prefix": "triton/model_repository",
    "gcs_models_src": str(REPO / "model_repository"),
    "gcr_image_mode": "mirror", "gcr_image_source": "nvcr.io/nvidia/tritonserver:24.10-py3",
    "gcr_image_registry": "us-central1-docker.pkg.dev", "gcr_image_project": "my-project-123",
    "gcr_image_repository": "triton", "gcr_image_name": "triton_fil", "gcr_image_tag": "24.10-py3",
    "gcr_image_build_args": {}, "gcr_image_build_context": "", "gcr_image_docker_host": "",
    "triton_helm_release": "triton-fil", "triton_helm_namespace": "triton", "triton_helm_gpu_count": 1,
    "triton_helm_min_replicas": 1, "triton_helm_max_replicas": 3, "triton_helm_extra_args": ["--log-info=true"],
    "triton_helm_service_type": "ClusterIP", "triton_helm_service_source_ranges": [],
    "triton_helm_autoscaling_metric": {"name": "triton_queue", "expr": "sum(x)", "target": "20000"},
    "workload_identity_triton_account": "triton-fil", "workload_identity_metrics_account": "triton-fil-metrics",
    "workload_identity_models_bucket": "my-project-models", "workload_identity_state": "present",
    "triton_helm_gcp_service_account": "triton-fil@my-project-123.iam.gserviceaccount.com",
    "metrics_adapter_gcp_service_account": "triton-fil-metrics@my-project-123.iam.gserviceaccount.com",
    "workload_identity_triton_namespace": "triton", "workload_identity_triton_kubernetes_account": "triton-fil",
    "gpu_drivers_min_nodes": 2, "verify_load_concurrency": 4, "verify_timeout": 300,
    "verify_reference_file": str(REPO / "model_repository" / "fil_reference.json"),
}


def problems_of(change, roles=GKE_ROLES, target="gke", sources=None):
    return check({**GOOD, **change}, roles=roles, target=target, sources=sources)


def test_good_settings_pass():
    assert check(GOOD, roles=GKE_ROLES, target="gke") == []


# Each example of issue 13, and each rule: exactly one problem, naming the variable, with a fix.
CASES = [
    # (the values derived from gcp_project are left out: the action plugin reports only the root)
    ({"gcp_project": "My Project", "triton_helm_gcp_service_account": "", "metrics_adapter_gcp_service_account": "",
      "gcr_image_project": "p"}, "gcp_project", "not the display name"),
    ({"gcp_zone": "us-central1"}, "gcp_zone", "use a name like 'us-central1-a'"),
    ({"gcp_zone": "europe-west4-a"}, "gcp_zone", "pick a zone of that region"),
    ({"gcp_region": "europe-west4", "gcp_zone": "europe-west4-a"}, "gke_cluster_location", "put the cluster in"),
    ({"gke_cluster_location": "us-central"}, "gke_cluster_location", "is neither a zone"),
    ({"gke_cluster_location": "us-central1", "gke_cluster_node_locations": ["europe-west4-a"]},
     "gke_cluster_node_locations", "list zones of us-central1"),
    ({"gke_cluster_name": "Triton_FIL"}, "gke_cluster_name", "at most 40 characters"),
    ({"gke_cluster_name": "t" * 41}, "gke_cluster_name", "at most 40 characters"),
    ({"gke_cluster_gpu_pool_name": "9pool"}, "gke_cluster_gpu_pool_name", "starting with a letter"),
    ({"triton_helm_release": "Triton"}, "triton_helm_release", "at most 53"),
    ({"triton_helm_release": "t" * 54}, "triton_helm_release", "at most 53"),
    ({"triton_helm_release": "1triton"}, "triton_helm_release", "a letter first"),
    ({"triton_helm_namespace": "my ns"}, "triton_helm_namespace", "namespace name"),
    ({"workload_identity_triton_kubernetes_account": "Triton"}, "workload_identity_triton_kubernetes_account",
     "service account name"),
    ({"gcs_models_bucket": "gs://models", "workload_identity_models_bucket": "models"}, "gcs_models_bucket",
     "drop the 'gs://' prefix"),
    ({"gcs_models_prefix": "gs://b/p"}, "gcs_models_prefix", "must be an object prefix"),
    ({"gke_cluster_gpu_min_nodes": 4, "gpu_drivers_min_nodes": 1}, "gke_cluster_gpu_min_nodes",
     "set gke_cluster_gpu_min_nodes <= gke_cluster_gpu_max_nodes"),
    ({"gke_cluster_gpu_max_nodes": 0, "gke_cluster_gpu_min_nodes": 0, "gpu_drivers_min_nodes": 0},
     "gke_cluster_gpu_max_nodes", "set it to at least 1"),
    ({"triton_helm_min_replicas": 0}, "triton_helm_min_replicas", "must be >= 1"),
    ({"triton_helm_min_replicas": 3, "triton_helm_max_replicas": 2}, "triton_helm_min_replicas", "<= triton_helm_max"),
    ({"gke_cluster_gpu_machine_type": "e2-standard-4"}, "gke_cluster_gpu_machine_type", "attaches to N1"),
    ({"gke_cluster_gpu_accelerator_count": 3}, "gke_cluster_gpu_accelerator_count", "allowed counts: 1, 2, 4"),
    ({"gke_cluster_gpu_machine_type": "n1-standard-64"}, "gke_cluster_gpu_machine_type", "at most 48"),
    ({"gke_cluster_gpu_accelerator_type": "nvidia-l4"}, "gke_cluster_gpu_machine_type", "g2-standard-4"),
    ({"gke_cluster_gpu_accelerator_type": "nvidia-l4", "gke_cluster_gpu_machine_type": "g2-standard-24"},
     "gke_cluster_gpu_accelerator_count", "exactly 2"),
    ({"gke_cluster_gpu_machine_type": "a2-highgpu-1g"}, "gke_cluster_gpu_machine_type", "comes with nvidia-tesla-a100"),
    ({"gke_cluster_gpu_accelerator_type": "nvidia-t4"}, "gke_cluster_gpu_accelerator_type", "not a GPU type"),
    ({"gke_cluster_gpu_disk_size_gb": 5}, "gke_cluster_gpu_disk_size_gb", "at least 15"),
    ({"triton_helm_gpu_count": 2}, "triton_helm_gpu_count", "set triton_helm_gpu_count <= 1"),
    ({"triton_helm_max_replicas": 4}, "triton_helm_max_replicas", "holds at most 3"),
    ({"gpu_drivers_min_nodes": 4}, "gpu_drivers_min_nodes", "set it <= 3"),
    ({"gke_cluster_master_authorized_networks": [{"cidr_block": "10.0.0.0/33"}]},
     "gke_cluster_master_authorized_networks", "not a valid CIDR block"),
    ({"gke_cluster_master_authorized_networks": [{"cidr_block": "10.0.0.1"}]},
     "gke_cluster_master_authorized_networks", "write ADDRESS/MASK"),
    ({"gke_cluster_master_authorized_networks": [{"cidr_block": "10.0.0.1/8"}]},
     "gke_cluster_master_authorized_networks", "'10.0.0.0/8'"),
    ({"triton_helm_service_type": "LoadBalancer", "triton_helm_service_source_ranges": ["203.0.113.7"]},
     "triton_helm_service_source_ranges", "CIDR notation"),
    ({"verify_reference_file": "/nonexistent/ref.json"}, "verify_reference_file", "does not exist"),
    ({"gcs_models_src": "/nonexistent/models"}, "gcs_models_src", "is not a folder"),
    ({"gcp_auth_kind": "serviceaccount", "gcp_service_account_file": "/nonexistent/key.json"},
     "gcp_service_account_file", "does not exist"),
    ({"triton_helm_gcs_key_file": "/nonexistent/key.json"}, "triton_helm_gcs_key_file", "Workload Identity"),
    ({"gcr_image_mode": "build"}, "gcr_image_build_context", "or use gcr_image_mode: mirror"),
    ({"gcr_image_mode": "build", "gcr_image_build_context": "/nonexistent"}, "gcr_image_build_context", "not a folder"),
    ({"triton_helm_service_source_ranges": ["10.0.0.0/8"]}, "triton_helm_service_source_ranges",
     "set triton_helm_service_type: LoadBalancer"),
    ({"gcr_image_build_args": {"A": "1"}}, "gcr_image_build_args", "only applies to gcr_image_mode: build"),
    ({"gcr_image_source_password": "secret"}, "gcr_image_source_username", "only sent with a user"),
    ({"triton_helm_extra_args": ["model-control-mode=explicit"]}, "triton_helm_extra_args", "'--name=value'"),
    ({"triton_helm_extra_args": ["--model-repository=gs://other"]}, "triton_helm_extra_args", "use gcs_models_bucket"),
    ({"gcr_image_source": "tritonserver latest"}, "gcr_image_source", "invalid"),
    ({"gcr_image_registry": "https://gcr.io"}, "gcr_image_registry", "not a registry host"),
    ({"gcr_image_tag": ".bad"}, "gcr_image_tag", "not an image tag"),
    ({"gcr_image_name": "Triton"}, "gcr_image_name", "cannot be part of an image path"),
    ({"gcr_image_project": ""}, "gcr_image_project", "set gcp_project or gcr_image_project"),
    ({"gcr_image_repository": ""}, "gcr_image_repository", "needs a repository id"),
    ({"gcp_auth_kind": "serviceaccount"}, "gcp_service_account_file", "is required with gcp_auth_kind=serviceaccount"),
    ({"gcp_auth_kind": "accesstoken"}, "gcp_access_token", "keep it in Ansible Vault"),
    ({"gcp_auth_kind": "anonymous"}, "gcp_auth_kind", "only works with emulators"),
    ({"workload_identity_triton_account": "tf"}, "workload_identity_triton_account", "6-30"),
    ({"triton_helm_gcp_service_account": "triton@other.iam.gserviceaccount.com"}, "triton_helm_gcp_service_account",
     "triton-fil@my-project-123.iam.gserviceaccount.com"),
    ({"workload_identity_models_bucket": ""}, "workload_identity_models_bucket", "set gcs_models_bucket"),
    ({"triton_helm_autoscaling_metric": {"name": "queue-time", "expr": "x", "target": "1"}},
     "triton_helm_autoscaling_metric", "not a Prometheus series name"),
    ({"triton_helm_autoscaling_metric": {"name": "q", "expr": "x", "target": "20 ms"}},
     "triton_helm_autoscaling_metric", "not a Kubernetes quantity"),
    ({"verify_load_concurrency": 0}, "verify_load_concurrency", "at least 1"),
    ({"verify_load_duration": -1}, "verify_load_duration", ">= 0"),
]


@pytest.mark.parametrize("change,variable,words", CASES)
def test_each_rule_names_the_variable_and_the_fix(change, variable, words):
    problems = problems_of(change)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{variable}: ") and words in problems[0], problems


def test_given_values_only_for_rules_that_compare_with_the_inventory():
    # triton_helm_image from the role default (the fact of gcr_image) is not the user's to fix.
    assert problems_of({"triton_helm_image": "repo/image:tag"}, sources={"triton_helm_image": "default"}) == []
    (problem,) = problems_of({"triton_helm_image": "repo/image:tag"})
    assert problem.startswith("triton_helm_image: 'repo/image:tag' is not pinned")
    (problem,) = problems_of({"triton_helm_gpu_accelerator": "nvidia-l4"})
    assert problem.startswith("triton_helm_gpu_accelerator: 'nvidia-l4' differs from the pool's GPU")


def test_all_problems_are_listed_at_once():
    problems = problems_of({"gcp_zone": "bad", "gcs_models_bucket": "UPPER", "gke_cluster_gpu_disk_size_gb": 1})
    assert [p.split(":")[0] for p in problems] == ["gcp_zone", "gcs_models_bucket", "gke_cluster_gpu_disk_size_gb"]


def test_regional_cluster_counts_three_zones_unless_node_locations_say_otherwise():
    regional = {"gke_cluster_location": "us-central1", "gcp_zone": None}
    assert problems_of({**regional, "triton_helm_max_replicas": 9}) == []
    (problem,) = problems_of({**regional, "triton_helm_max_replicas": 10})
    assert "9 (3 nodes x 3 zone(s) x 1 GPU(s))" in problem
    (problem,) = problems_of({**regional, "gke_cluster_node_locations": ["us-central1-a", "us-central1-b"],
                              "triton_helm_max_replicas": 7})
    assert "6 (3 nodes x 2 zone(s) x 1 GPU(s))" in problem


def test_target_decides_which_rules_apply():
    # The local stack: no GKE rules, anonymous auth is fine, the GKE values are irrelevant.
    local = {"triton_fil_target": "local", "gcp_project": "local-project", "gcp_auth_kind": "anonymous",
             "gcs_models_bucket": "triton-fil-local", "gke_cluster_gpu_machine_type": "e2-standard-4",
             "gcs_models_src": str(REPO / "model_repository"), "verify_timeout": 60}
    assert check(local) == []
    # kubernetes: the kubeconfig must be given and hold the context; no GKE machine rules.
    kube = {**GOOD, "triton_fil_target": "kubernetes", "gke_cluster_gpu_machine_type": "e2-standard-4"}
    (problem,) = check(kube, target="kubernetes")
    assert problem.startswith("triton_fil_kubeconfig: is required with triton_fil_target=kubernetes")


def test_kubeconfig_and_its_context(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "contexts": [{"name": "prod", "context": {}}]}))
    kube = {**GOOD, "triton_fil_target": "kubernetes", "triton_fil_kubeconfig": str(kubeconfig)}
    assert check({**kube, "triton_fil_kube_context": "prod"}, target="kubernetes") == []
    (problem,) = check({**kube, "triton_fil_kube_context": "dev"}, target="kubernetes")
    assert problem == f"triton_fil_kube_context: 'dev' is not a context of {kubeconfig} — use one of: prod"
    (problem,) = check(kube, target="kubernetes")
    assert problem.startswith("triton_fil_kube_context: is empty")


def test_build_mode_needs_the_dockerfile(tmp_path):
    (problem,) = problems_of({"gcr_image_mode": "build", "gcr_image_build_context": str(tmp_path),
                              "gcr_image_dockerfile": "Dockerfile"})
    assert problem.startswith("gcr_image_dockerfile: ") and "does not exist" in problem
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert problems_of({"gcr_image_mode": "build", "gcr_image_build_context": str(tmp_path),
                        "gcr_image_dockerfile": "Dockerfile"}) == []


def test_every_rule_reports_only_the_variables_it_declares():
    # Declared lists are what docs/roles.md shows: a rule naming an undeclared variable is a defect.
    bad = {**GOOD}
    for change, _variable, _words in CASES:
        for variable, _message, name in run({**bad, **change}, roles=GKE_ROLES, target="gke"):
            declared = next(r for r in RULES if r.name == name).variables
            assert variable in declared, f"rule {name} reports {variable}, which it does not declare"


def role_options():
    found = set()
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        found |= set(yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"])
    return found


def test_every_rule_variable_exists():
    # Renaming a variable without its rule would turn the check off silently: this test fails instead.
    known = role_options() | set(SHARED_VARIABLES)
    for item in RULES + LIVE_RULES:
        missing = [v for v in item.variables if v not in known]
        assert not missing, f"rule {item.name} reads variables no role spec defines: {missing}"
        assert item.summary and all(r in TARGET_ROLES["gke"] for r in item.roles)


def test_chart_flags_are_the_flags_the_chart_sets():
    template = (REPO / "roles" / "triton_helm" / "files" / "triton" / "templates" / "deployment.yaml.tpl").read_text()
    flags = set(re.findall(r"^\s+- (--[a-z-]+)=", template, re.M))
    assert flags == set(rules.CHART_FLAGS)


def test_gpu_tables():
    assert gpus.check_gpu_machine("nvidia-tesla-t4", 4, "n1-standard-96") == []
    assert gpus.check_gpu_machine("nvidia-tesla-v100", 8, "n1-highmem-96") == []
    assert gpus.check_gpu_machine("nvidia-tesla-t4", 1, "custom-8-30720") == []
    assert gpus.check_gpu_machine("nvidia-l4", 1, "g2-standard-8") == []
    assert gpus.check_gpu_machine("nvidia-h100-80gb", 8, "a3-highgpu-8g") == []
    (problem,) = gpus.check_gpu_machine("nvidia-tesla-v100", 1, "n1-standard-16")
    assert problem[0] == "gke_cluster_gpu_machine_type" and "use 2 GPUs" in problem[1]
    (problem,) = gpus.check_gpu_machine("nvidia-tesla-t4", 1, "g1-small")
    assert "not f1-micro, g1-small" in problem[1]
    compute = json.loads((DOCUMENTS / "compute.v1.json").read_text())
    assert set(gpus.QUOTA_METRICS.values()) <= set(compute["schemas"]["Quota"]["properties"]["metric"]["enum"])
