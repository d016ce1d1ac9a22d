"""Two deployments (two "projects", each with its own bucket and Triton) in one inventory, converged in one run."""

from __future__ import annotations

import pytest
import yaml

from local_stack.stack import LocalStack
from testlib import REPO, run_playbook

pytestmark = pytest.mark.stack
SITE = REPO / "playbooks" / "site.yml"


@pytest.fixture(scope="module")
def two_stacks(tmp_path_factory):
    stacks = {name: LocalStack(tmp_path_factory.mktemp(name), bucket=f"{name}-models") for name in ("proj-a", "proj-b")}
    envs = {}
    try:
        for name, stack in stacks.items():
            envs[name] = stack.up()
        yield envs
    finally:
        for stack in stacks.values():
            stack.down()


def inventory(tmp_path, envs, **overrides):
    hosts = {}
    for name, env in envs.items():
        hosts[name] = {
            "gcp_project": name, "gcp_storage_endpoint": env["TRITON_FIL_GCS_ENDPOINT"],
            "gcs_models_bucket": env["TRITON_FIL_BUCKET"], "gcs_models_prefix": env["TRITON_FIL_PREFIX"],
            "gcs_models_bucket_location": "US-CENTRAL1",
            "triton_fil_endpoint": {"http_url": env["TRITON_FIL_HTTP_URL"], "grpc_url": env["TRITON_FIL_GRPC_URL"],
                                    "metrics_url": env["TRITON_FIL_METRICS_URL"]},
            **overrides.get(name, {}),
        }
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "triton_fil_target": "local", "gcp_auth_kind": "anonymous", "verify_timeout": 180,
              "verify_load_duration": 1, "model_rollout_config_name": "cpu"}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"triton_fil": {"vars": common, "hosts": hosts}}))
    return path


def summary(run):
    return {r["item"]: r["msg"] for r in run.results("One line per deployment (a failed one does not stop the others)")
            [0]["results"]}


def test_both_projects_converge_then_rerun_changes_nothing(two_stacks, tmp_path):
    inv = inventory(tmp_path, two_stacks)
    first = run_playbook(SITE, inventory=inv)
    assert first.rc == 0, first.stdout[-3000:]
    for name in ("proj-a", "proj-b"):
        sync = first.result("Sync the model repository to the bucket", name)
        # The version file; the rollout publishes the two configurations (no server serves yet).
        assert sync["url"] == f"gs://{name}-models/triton/model_repository" and sync["uploaded"] == 1
        assert len(first.result("Roll the model repository out to the serving Triton servers (candidate checked, "
                                "then switched)", name)["uploaded"]) == 2
        assert first.result("Verify inference against the reference", name)["inference"]["matched"] is True
    lines = summary(first)
    assert lines["proj-a"].startswith("proj-a: VERIFIED at http://127.0.0.1:")
    assert lines["proj-b"].startswith("proj-b: VERIFIED at http://127.0.0.1:")
    second = run_playbook(SITE, inventory=inv)
    assert second.rc == 0 and second.changed == 0


def test_a_failing_project_does_not_stop_the_other(two_stacks, tmp_path):
    # A setting of a role the local target runs (GKE-only settings are not the local stack's business).
    inv = inventory(tmp_path, two_stacks, **{"proj-b": {"verify_load_concurrency": 0}})
    run = run_playbook(SITE, inventory=inv)
    assert run.rc != 0
    assert run.result("Verify inference against the reference", "proj-a")["inference"]["matched"] is True
    lines = summary(run)
    assert lines["proj-a"].startswith("proj-a: VERIFIED")
    assert lines["proj-b"] == "proj-b: FAILED (see its error above); reached: nothing"
