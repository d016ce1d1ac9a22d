"""The gke_cluster role and playbooks/teardown.yml against the GKE simulator."""

from __future__ import annotations

import json
import stat

import pytest
import yaml

from local_stack.simulators.iam import IamSimulator
from testlib import REPO, run_playbook

ROLE_PLAY = """
- hosts: triton_fil
  gather_facts: false
  roles:
    - role: rapids.triton_fil.gke_cluster
  post_tasks:
    - name: facts
      ansible.builtin.debug:
        msg: "{{ {'kubeconfig': triton_fil_kubeconfig, 'cluster': triton_fil_cluster} }}"
"""


@pytest.fixture
def iam():
    """teardown.yml also removes the Workload Identity bindings: an IAM simulator answers them."""
    sim = IamSimulator().serve()
    sim.add_bucket("sim-project-models", "sim-project")
    try:
        yield sim
    finally:
        sim.close()


def inventory(tmp_path, gke, iam=None, **extra):
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "triton_fil_target": "gke", "gcp_project": "sim-project", "gcp_auth_kind": "accesstoken",
            "gcp_access_token": "ya29.role-token-never-printed", "gke_cluster_api_endpoint": gke.url,
            "gke_cluster_wait_timeout": 60, "gke_cluster_poll_interval": 1,
            "gke_cluster_kubeconfig_path": str(tmp_path / "kube" / "config"),
            "gcs_models_bucket": "sim-project-models", **extra}
    if iam is not None:
        host.update(workload_identity_iam_endpoint=iam.urls["iam"],
                    workload_identity_resourcemanager_endpoint=iam.urls["resourcemanager"],
                    workload_identity_storage_endpoint=iam.urls["storage"])
    path = tmp_path / ("hosts-variant.yml" if extra else "hosts.yml")
    path.write_text(yaml.safe_dump({"triton_fil": {"hosts": {"sim-deploy": host}}}))
    return path


def test_role_converges_hands_over_facts_and_teardown_asks_first(ansible, gke, iam, tmp_path):
    inv = inventory(tmp_path, gke, iam)
    first = ansible(ROLE_PLAY, inventory=inv)
    assert first.rc == 0, first.stdout[-3000:]
    facts = first.result("facts")["msg"]
    assert facts["kubeconfig"] == str(tmp_path / "kube" / "config")
    assert facts["cluster"]["workload_pool"] == "sim-project.svc.id.goog"
    assert facts["cluster"]["gpu_driver_version"] == "LATEST"
    assert facts["cluster"]["context"] == "gke_sim-project_us-central1-a_triton-fil"
    assert stat.S_IMODE((tmp_path / "kube" / "config").stat().st_mode) == 0o600
    pool = gke.clusters[("sim-project", "us-central1-a", "triton-fil")]["nodePools"][1]
    assert pool["autoscaling"] == {"enabled": True, "minNodeCount": 2, "maxNodeCount": 3}
    assert pool["config"]["accelerators"][0]["acceleratorType"] == "nvidia-tesla-t4"
    assert "ya29.role-token-never-printed" not in first.stdout
    writes = [c[2] for c in gke.write_calls()]
    assert writes == ["container.projects.locations.clusters.create"], (
        f"a new cluster brings its GPU pool up in its own create operation: {writes}")

    gke.reset_log()
    second = ansible(ROLE_PLAY, inventory=inv)
    assert second.rc == 0 and second.changed == 0
    assert gke.write_calls() == []

    daemonset = ansible(ROLE_PLAY, inventory=inventory(tmp_path, gke, iam, gpu_drivers_mode="daemonset"))
    assert daemonset.rc != 0, "switching driver installation is recreate-only and must be refused"
    assert "gpu_driver_version ('LATEST' -> 'INSTALLATION_DISABLED')" in daemonset.stdout

    refused = run_playbook(REPO / "playbooks" / "teardown.yml", inventory=inv)
    assert refused.rc != 0
    assert "re-run with -e triton_fil_teardown_confirm=sim-deploy" in json.dumps(refused.data)
    assert ("sim-project", "us-central1-a", "triton-fil") in gke.clusters

    gke.reset_log()
    planned = run_playbook(REPO / "playbooks" / "teardown.yml", inventory=inv, check=True,
                           extra_vars={"triton_fil_teardown_confirm": "sim-deploy"})
    assert planned.rc == 0, planned.stdout[-3000:]
    assert planned.result("Remove the GPU node pool", "sim-deploy")["changes"] == [
        {"field": "node_pool", "before": "present", "after": "absent"}]
    assert planned.result("Remove the cluster", "sim-deploy")["changes"] == [
        {"field": "cluster", "before": "present", "after": "absent"}]
    assert gke.write_calls() == [], "teardown in check mode lists what would go and deletes nothing"

    down = run_playbook(REPO / "playbooks" / "teardown.yml", inventory=inv,
                        extra_vars={"triton_fil_teardown_confirm": "sim-deploy"})
    assert down.rc == 0, down.stdout[-3000:]
    assert [c[2].rsplit(".", 2)[-2:] for c in gke.write_calls()] == [["nodePools", "delete"], ["clusters", "delete"]]
    assert gke.clusters == {}
    again = run_playbook(REPO / "playbooks" / "teardown.yml", inventory=inv,
                         extra_vars={"triton_fil_teardown_confirm": "sim-deploy"})
    assert again.rc == 0 and again.changed == 0, "a second teardown finds nothing to delete"


def test_l4_spot_pool_with_its_on_demand_fallback_time_sharing_and_image_streaming(ansible, gke, iam, tmp_path):
    inv = inventory(tmp_path, gke, iam, gke_cluster_gpu_machine_type="g2-standard-4",
                    gke_cluster_gpu_accelerator_type="nvidia-l4", gke_cluster_gpu_spot=True,
                    gke_cluster_gpu_sharing_strategy="TIME_SHARING", gke_cluster_gpu_max_shared_clients=3)
    first = ansible(ROLE_PLAY, inventory=inv)
    assert first.rc == 0, first.stdout[-3000:]
    assert [c[2] for c in gke.write_calls()] == ["container.projects.locations.clusters.create"], (
        "the cluster, the Spot pool and its fallback come up in one operation")
    pools = {p["name"]: p for p in gke.clusters[("sim-project", "us-central1-a", "triton-fil")]["nodePools"]}
    assert sorted(pools) == ["default-pool", "gpu-pool", "gpu-pool-on-demand"]
    spot, fallback = pools["gpu-pool"], pools["gpu-pool-on-demand"]
    assert spot["config"]["spot"] and not fallback["config"].get("spot")
    assert fallback["autoscaling"] == {"enabled": True, "minNodeCount": 0, "maxNodeCount": 3}
    for pool in (spot, fallback):
        accel = pool["config"]["accelerators"][0]
        assert (accel["acceleratorType"], pool["config"]["machineType"]) == ("nvidia-l4", "g2-standard-4")
        assert accel["gpuSharingConfig"] == {"gpuSharingStrategy": "TIME_SHARING", "maxSharedClientsPerGpu": "3"}
        assert pool["config"]["gcfsConfig"] == {"enabled": True}

    gke.reset_log()
    second = ansible(ROLE_PLAY, inventory=inv)
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    assert gke.write_calls() == [], "both pools converged: no write"
    plan = ansible(ROLE_PLAY, inventory=inv, check=True)
    assert plan.rc == 0 and plan.changed == 0 and gke.write_calls() == [], plan.stdout[-3000:]

    down = run_playbook(REPO / "playbooks" / "teardown.yml", inventory=inv,
                        extra_vars={"triton_fil_teardown_confirm": "sim-deploy"})
    assert down.rc == 0, down.stdout[-3000:]
    assert [c[2].rsplit(".", 2)[-2:] for c in gke.write_calls()] == [
        ["nodePools", "delete"], ["nodePools", "delete"], ["clusters", "delete"]]
