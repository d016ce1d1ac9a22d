"""site.yml with a bad inventory stops in preflight, naming each bad variable once, before any server sees a write.

The GKE inventory here is what a new user writes (credentials present, every endpoint pointed at a local
server: the GKE simulator, the Compute + Service Usage simulator, fake-gcs-server, the IAM simulator's
Cloud Storage): one host per mistake, so one `site.yml --tags preflight` run shows every example of issue 13
failing on its own, and a good host passing.
"""

from __future__ import annotations

import json

import pytest
import yaml

from local_stack.simulators.compute import ComputeSimulator
from local_stack.simulators.iam import IamSimulator
from testlib import REPO, run_playbook

SITE = REPO / "playbooks" / "site.yml"
PREFLIGHT_TASK = "Check every setting and the model repository; fail once with all problems"
SERVICES = ["compute.googleapis.com", "container.googleapis.com", "storage.googleapis.com",
            "artifactregistry.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com",
            "monitoring.googleapis.com"]
# The inventories' projects and regions (inventories/dev, prod, multi-project) and the test's own.
PROJECTS = ["good-project", "my-dev-project", "my-prod-us-project", "team-us-project", "team-eu-project"]
ZONES = {"us-central1": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
         "europe-west4": ["europe-west4-a", "europe-west4-b", "europe-west4-c"]}


@pytest.fixture
def compute():
    sim = ComputeSimulator().serve()
    for project in PROJECTS + ["poor-project"]:
        sim.project(project, SERVICES)
    sim.project("bare-project", ["storage.googleapis.com"])
    for region, zones in ZONES.items():
        for zone in zones:
            sim.offer(zone, "nvidia-tesla-t4", max_cards=4)
        for project in PROJECTS:
            sim.quota(project, region, "NVIDIA_T4_GPUS", 16, 0)
        sim.quota("poor-project", region, "NVIDIA_T4_GPUS", 1, 0)
    sim.add_zone("us-central1-d")  # a zone without T4s
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
def iam():
    sim = IamSimulator().serve()
    sim.add_foreign_bucket("taken-models")
    try:
        yield sim
    finally:
        sim.close()


def endpoints(gke, compute, fake_gcs):
    return {"gcp_auth_kind": "accesstoken", "gcp_access_token": "ya29.preflight",
            "gke_cluster_api_endpoint": gke.url, "gcp_storage_endpoint": fake_gcs.url,
            "preflight_compute_endpoint": compute.urls["compute"],
            "preflight_serviceusage_endpoint": compute.urls["serviceusage"]}


def write_inventory(tmp_path, common, hosts):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"triton_fil": {"vars": common, "hosts": hosts}}))
    return path


def assert_no_writes(gke, compute, fake_gcs, iam=None):
    assert gke.write_calls() == [] and compute.write_calls() == [] and fake_gcs.writes() == []
    assert iam is None or iam.write_calls() == []


def tasks_after_the_preflight(run):
    """Tasks that ran on a deployment host outside the preflight play (the summary on localhost aside)."""
    names = [t["task"]["name"] for t in run.tasks() if set(t["hosts"]) - {"localhost"}]
    return [n for n in names if not (n.startswith("rapids.triton_fil.preflight : ") or n in (
        "Fail early when the local stack's endpoints are missing",
        "Stop after the preflight (only the preflight was asked for)"))]


# Issue 13's examples (and the live checks): host -> (its one bad setting, the variable named, words of the fix).
EXAMPLES = {
    "t4-on-e2": ({"gke_cluster_gpu_machine_type": "e2-standard-4"}, "gke_cluster_gpu_machine_type", "attaches to N1"),
    "three-t4": ({"gke_cluster_gpu_accelerator_count": 3}, "gke_cluster_gpu_accelerator_count", "allowed counts: 1, 2, 4"),
    "tiny-disk": ({"gke_cluster_gpu_disk_size_gb": 5}, "gke_cluster_gpu_disk_size_gb", "at least 15"),
    "fast-channel": ({"gke_cluster_release_channel": "FAST"}, "gke_cluster_release_channel",
                     "must be one of: RAPID, REGULAR, STABLE, EXTENDED, UNSPECIFIED, got: FAST"),
    "capital-release": ({"triton_helm_release": "Triton"}, "triton_helm_release", "at most 53"),
    "spaced-namespace": ({"triton_helm_namespace": "triton fil"}, "triton_helm_namespace", "namespace name"),
    "two-gpus-per-pod": ({"triton_helm_gpu_count": 2}, "triton_helm_gpu_count", "set triton_helm_gpu_count <= 1"),
    "too-many-replicas": ({"triton_helm_max_replicas": 4}, "triton_helm_max_replicas", "holds at most 3"),
    "cidr-33": ({"gke_cluster_master_authorized_networks": [{"cidr_block": "10.0.0.0/33"}]},
                "gke_cluster_master_authorized_networks", "not a valid CIDR block"),
    "cidr-no-mask": ({"gke_cluster_master_authorized_networks": [{"cidr_block": "10.1.2.3"}]},
                     "gke_cluster_master_authorized_networks", "write ADDRESS/MASK"),
    "no-reference": ({"verify_reference_file": "/nonexistent/fil_reference.json"}, "verify_reference_file",
                     "does not exist"),
    "build-no-context": ({"gcr_image_mode": "build"}, "gcr_image_build_context", "or use gcr_image_mode: mirror"),
    "flag-without-dashes": ({"triton_helm_extra_args": ["model-control-mode=explicit"]}, "triton_helm_extra_args",
                            "'--name=value'"),
    "chart-flag": ({"triton_helm_extra_args": ["--model-repository=gs://elsewhere/models"]}, "triton_helm_extra_args",
                   "overrides a flag the chart sets"),
    "no-bucket": ({"gcs_models_bucket": ""}, "gcs_models_bucket", "set gcs_models_bucket in the inventory"),
    "min-over-max": ({"gke_cluster_gpu_min_nodes": 4}, "gke_cluster_gpu_min_nodes", "<= gke_cluster_gpu_max_nodes"),
    # live: asked of the simulators with the run's token
    "zone-without-t4": ({"gke_cluster_location": "us-central1", "gke_cluster_node_locations": ["us-central1-d"]},
                        "gke_cluster_node_locations", "nvidia-tesla-t4 is not offered in us-central1-d"),
    "poor-quota": ({"gcp_project": "poor-project", "gcs_models_bucket": "poor-project-models"},
                   "gke_cluster_gpu_min_nodes", "but the quota in us-central1 is 1"),
    "apis-off": ({"gcp_project": "bare-project", "gcs_models_bucket": "bare-project-models"}, "gcp_project",
                 "does not have these APIs enabled"),
    "taken-bucket": ({"gcs_models_bucket": "taken-models"}, "gcs_models_bucket", "pick another name"),
}


def test_each_example_fails_once_naming_its_variable_before_any_write(gke, compute, iam, fake_gcs, tmp_path):
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "triton_fil_target": "gke", **endpoints(gke, compute, fake_gcs),
              "gcp_project": "good-project", "gcs_models_bucket": "good-project-models",
              "gke_cluster_location": "us-central1-a", "gke_cluster_gpu_min_nodes": 2, "gke_cluster_gpu_max_nodes": 3,
              "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    hosts = {name: dict(change) for name, (change, _variable, _words) in EXAMPLES.items()}
    hosts["good"] = {}
    hosts["taken-bucket"]["gcp_storage_endpoint"] = iam.urls["storage"]
    inventory = write_inventory(tmp_path, common, hosts)
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=inventory, extra_vars={"verify_load_duration": 0}, timeout=600,
                       tags="preflight", env={"ANSIBLE_FORKS": "4"})
    assert run.rc != 0
    good = run.result(PREFLIGHT_TASK, "good")
    assert not good.get("failed"), good.get("msg")
    assert good["live"]["quota"]["metric"] == "NVIDIA_T4_GPUS" and good["live"]["bucket"].startswith("absent")
    for host, (_change, variable, words) in EXAMPLES.items():
        result = run.result(PREFLIGHT_TASK, host)
        assert result.get("failed"), f"{host} passed the preflight"
        problems = result["problems"]
        assert len(problems) == 1, f"{host}: {problems}"
        assert problems[0].startswith(f"{variable}: ") and words in problems[0], f"{host}: {problems}"
        assert "nothing was changed" in result["msg"]
    assert tasks_after_the_preflight(run) == []
    assert_no_writes(gke, compute, fake_gcs, iam)


def test_every_problem_is_listed_in_one_failure(gke, compute, fake_gcs, tmp_path):
    # Without --tags: site.yml stops in the preflight with all four problems, the spec error among them.
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "triton_fil_target": "gke", **endpoints(gke, compute, fake_gcs),
              "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    hosts = {"bad-project": {"gcp_project": "good-project", "gcs_models_bucket": "Bad_Bucket",
                             "gke_cluster_gpu_min_nodes": 4, "gke_cluster_gpu_max_nodes": 3,
                             "gke_cluster_location": "us-central", "gke_cluster_gpu_accelerator_type": "nvidia-tesla-t5",
                             "verify_timeout": "soon"}}
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=write_inventory(tmp_path, common, hosts))
    assert run.rc != 0
    result = run.result(PREFLIGHT_TASK, "bad-project")
    variables = sorted(p.split(":", 1)[0] for p in result["problems"])
    assert variables == ["gcs_models_bucket", "gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_min_nodes",
                         "gke_cluster_location", "verify_timeout"], result["problems"]
    assert "deployment_preflight: 5 problem(s) — nothing was changed" in result["msg"]
    assert tasks_after_the_preflight(run) == []
    assert_no_writes(gke, compute, fake_gcs)


def test_credentials_are_checked_once(gke, compute, fake_gcs, tmp_path):
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              **endpoints(gke, compute, fake_gcs), "gcp_project": "good-project",
              "gcs_models_bucket": "good-project-models", "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    garbled = tmp_path / "garbled-key.json"
    garbled.write_text(json.dumps({"type": "service_account"}))
    hosts = {"missing-key": {"gcp_auth_kind": "serviceaccount", "gcp_service_account_file": str(tmp_path / "no.json")},
             "garbled-key": {"gcp_auth_kind": "serviceaccount", "gcp_service_account_file": str(garbled)}}
    run = run_playbook(SITE, inventory=write_inventory(tmp_path, common, hosts), extra_vars={"verify_load_duration": 0})
    assert run.rc != 0
    (missing,) = run.result(PREFLIGHT_TASK, "missing-key")["problems"]
    assert missing.startswith("gcp_service_account_file: ") and "does not exist" in missing
    (garbled_problem,) = run.result(PREFLIGHT_TASK, "garbled-key")["problems"]
    assert garbled_problem.startswith("gcp_auth_kind: no access token with auth_kind=serviceaccount: service_account_file")
    assert "is not a service-account key" in garbled_problem
    assert gke.requests == [] and compute.requests == []


def test_models_are_checked_for_the_release_the_image_serves(gke, compute, fake_gcs, tmp_path):
    """An inventory pinned to 24.10 is stopped in preflight: that release's Treelite cannot parse the sample model."""
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              **endpoints(gke, compute, fake_gcs), "gcp_project": "good-project",
              "gcs_models_bucket": "good-project-models", "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    hosts = {"old-release": {"gcr_image_source": "nvcr.io/nvidia/tritonserver:24.10-py3", "gcr_image_tag": "24.10-py3"}}
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=write_inventory(tmp_path, common, hosts), tags="preflight")
    assert run.rc != 0
    problems = run.result(PREFLIGHT_TASK, "old-release")["problems"]
    assert any(p.startswith("gcs_models_src: fil/1/xgboost.json: written by XGBoost 3.2.0, whose files Triton "
                            "24.10's Treelite 4.3.0 cannot parse") for p in problems), problems
    # The shipped configuration is in the 25.09+ names, which 24.10 does not read.
    assert "gcs_models_src: fil/config.pbtxt: parameters.is_classifier: introduced in FIL 25.09; Triton 24.10's " \
           "backend does not read it — use output_class (or run triton_model_repository with migrate: true)" in problems
    assert len(problems) == 5, problems  # is_classifier and output_class, in both configurations, and the file
    assert_no_writes(gke, compute, fake_gcs)


@pytest.mark.parametrize("inventory", ["dev", "prod", "multi-project"])
def test_tags_preflight_checks_a_google_inventory_and_stops(inventory, gke, compute, fake_gcs):
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=REPO / "inventories" / inventory, extra_vars=endpoints(gke, compute, fake_gcs),
                       tags="preflight")
    assert run.rc == 0, run.stdout[-3000:]
    results = run.results(PREFLIGHT_TASK)
    assert results and all(not r.get("failed") and r["problems"] == [] for r in results)
    assert all(r["live"]["quota"]["needed"] >= 1 and all(r["live"]["services"].values()) for r in results)
    stops = run.results("Stop after the preflight (only the preflight was asked for)")
    assert all("preflight passed; nothing was written" in r["msg"] for r in stops)
    assert tasks_after_the_preflight(run) == []
    # The live questions were asked (read-only) and nothing was written anywhere.
    assert compute.calls("acceleratorTypes.list") and compute.calls("regions.get")
    assert_no_writes(gke, compute, fake_gcs)


def test_tags_preflight_on_the_local_inventory(fake_gcs, tmp_path):
    env = {"TRITON_FIL_STACK_ENV": str(tmp_path / "no-stack.json"),
           "TRITON_FIL_GCS_ENDPOINT": fake_gcs.url, "TRITON_FIL_HTTP_URL": "http://127.0.0.1:9"}
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=REPO / "inventories" / "local", env=env, tags="preflight")
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result(PREFLIGHT_TASK, "local")
    assert result["roles"] == ["gcs_models", "model_rollout", "verify"] and result["target"] == "local"
    assert tasks_after_the_preflight(run) == []
    assert fake_gcs.requests() == []


def test_kubernetes_target_checks_the_kubeconfig_and_the_kubernetes_roles(gke, compute, fake_gcs, tmp_path):
    kubeconfig = tmp_path / "cluster.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "",
                                          "contexts": [{"name": "onprem", "context": {"cluster": "c", "user": "u"}}]}))
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "triton_fil_target": "kubernetes", **endpoints(gke, compute, fake_gcs), "gcp_project": "good-project",
              "gcs_models_bucket": "good-project-models", "triton_fil_kubeconfig": str(kubeconfig)}
    hosts = {"kube-good": {"triton_fil_kube_context": "onprem",
                           # GKE-only settings are not the kubernetes target's business
                           "gke_cluster_gpu_machine_type": "e2-standard-4"},
             "kube-wrong-context": {"triton_fil_kube_context": "gke_prod"},
             "kube-bad-release": {"triton_fil_kube_context": "onprem", "triton_helm_release": "Triton"}}
    fake_gcs.mark()
    run = run_playbook(SITE, inventory=write_inventory(tmp_path, common, hosts), tags="preflight")
    good = run.result(PREFLIGHT_TASK, "kube-good")
    assert not good.get("failed"), good.get("msg")
    assert good["roles"] == ["gcs_models", "gpu_drivers", "model_rollout", "triton_helm", "verify"]
    assert sorted(good["live"]["services"]) == ["storage.googleapis.com"]  # no metrics adapter unless enabled
    (context,) = run.result(PREFLIGHT_TASK, "kube-wrong-context")["problems"]
    assert context == f"triton_fil_kube_context: 'gke_prod' is not a context of {kubeconfig} — use one of: onprem"
    (release,) = run.result(PREFLIGHT_TASK, "kube-bad-release")["problems"]
    assert release.startswith("triton_helm_release: 'Triton' cannot be a Helm release")
    assert tasks_after_the_preflight(run) == []
    assert not compute.calls("acceleratorTypes.list")  # no GKE pool on this target
    assert_no_writes(gke, compute, fake_gcs)


def test_secrets_stay_out_of_the_output(gke, compute, fake_gcs, tmp_path):
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              **endpoints(gke, compute, fake_gcs), "gcp_access_token": "ya29.SECRET-TOKEN",
              "gcp_project": "good-project", "gcs_models_bucket": "good-project-models",
              "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    hosts = {"with-secrets": {"gcr_image_source_username": "$oauthtoken", "gcr_image_source_password": "NGC-SECRET-KEY",
                              "gcr_image_destination_username": "pusher",
                              "gcr_image_destination_password": "REGISTRY-SECRET"}}
    run = run_playbook(SITE, inventory=write_inventory(tmp_path, common, hosts), tags="preflight", verbosity=3,
                       callback=None)
    assert run.rc == 0, run.stdout[-3000:]
    assert "preflight passed" in run.stdout
    for secret in ("ya29.SECRET-TOKEN", "NGC-SECRET-KEY", "REGISTRY-SECRET"):
        assert secret not in run.stdout and secret not in run.stderr
