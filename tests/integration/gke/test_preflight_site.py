"""site.yml with a bad inventory stops in preflight, listing every problem, before any server sees a write."""

from __future__ import annotations

import yaml

from testlib import REPO, run_playbook


def inventory(tmp_path, gke, fake_gcs, **bad):
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "triton_fil_target": "gke", "gcp_auth_kind": "accesstoken", "gcp_access_token": "ya29.preflight",
              "gke_cluster_api_endpoint": gke.url, "gcp_storage_endpoint": fake_gcs.url,
              "gke_cluster_kubeconfig_path": str(tmp_path / "kubeconfig")}
    hosts = {
        "good-project": {"gcp_project": "good-project", "gcs_models_bucket": "good-project-models"},
        "bad-project": {"gcp_project": "bad-project", "gcs_models_bucket": "bad-project-models", **bad},
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"triton_fil": {"vars": common, "hosts": hosts}}))
    return path


def test_bad_values_fail_in_preflight_with_every_problem_and_no_write(gke, fake_gcs, tmp_path):
    inv = inventory(tmp_path, gke, fake_gcs, gke_cluster_gpu_min_nodes=4, gke_cluster_gpu_max_nodes=3,
                    gke_cluster_location="us-central", gke_cluster_gpu_accelerator_type="nvidia-tesla-t5",
                    gcs_models_bucket="Bad_Bucket")
    fake_gcs.mark()
    run = run_playbook(REPO / "playbooks" / "site.yml", inventory=inv, extra_vars={"verify_load_duration": 0},
                       limit="bad-project")
    assert run.rc != 0
    result = run.result("Check every setting and the model repository; fail once with all problems", "bad-project")
    variables = sorted(p.split(":", 1)[0] for p in result["problems"])
    assert variables == ["gcs_models_bucket", "gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_min_nodes",
                         "gke_cluster_location"], result["problems"]
    assert "nothing was changed" in result["msg"]
    assert gke.write_calls() == [] and gke.requests == []
    assert fake_gcs.writes() == []


def test_unusable_credentials_are_a_preflight_problem(gke, fake_gcs, tmp_path):
    inv = inventory(tmp_path, gke, fake_gcs, gcp_auth_kind="serviceaccount",
                    gcp_service_account_file=str(tmp_path / "missing-key.json"))
    run = run_playbook(REPO / "playbooks" / "site.yml", inventory=inv, limit="bad-project")
    assert run.rc != 0
    result = run.result("Check every setting and the model repository; fail once with all problems", "bad-project")
    (problem,) = result["problems"]
    assert problem.startswith("gcp_auth_kind: no access token with auth_kind=serviceaccount: service_account_file")
    assert "does not exist" in problem
    assert gke.requests == []


def test_models_are_checked_for_the_release_the_image_serves(gke, fake_gcs, tmp_path):
    """An inventory pinned to 24.10 is stopped in preflight: that release's Treelite cannot parse the sample model."""
    inv = inventory(tmp_path, gke, fake_gcs, gcr_image_source="nvcr.io/nvidia/tritonserver:24.10-py3",
                    gcr_image_tag="24.10-py3")
    fake_gcs.mark()
    run = run_playbook(REPO / "playbooks" / "site.yml", inventory=inv, limit="bad-project")
    assert run.rc != 0
    result = run.result("Check every setting and the model repository; fail once with all problems", "bad-project")
    problems = result["problems"]
    assert any(p.startswith("gcs_models_src: fil/1/xgboost.json: written by XGBoost 3.2.0, whose files Triton "
                            "24.10's Treelite 4.3.0 cannot parse") for p in problems), problems
    # The shipped configuration is in the 25.09+ names, which 24.10 does not read.
    assert "gcs_models_src: fil/config.pbtxt: parameters.is_classifier: introduced in FIL 25.09; Triton 24.10's " \
           "backend does not read it — use output_class (or run triton_model_repository with migrate: true)" in problems
    assert len(problems) == 5, problems  # is_classifier and output_class, in both configurations, and the file
    assert gke.requests == [] and fake_gcs.writes() == []
